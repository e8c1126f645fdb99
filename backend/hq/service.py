"""What HQ and store managers read about the chain: members found by what staff have in hand, a member's page."""

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.querystring import QueryString

from backend.core.clock import utcnow
from backend.core.db import Prepared, as_moment, get_engine, like
from backend.members import service as members
from backend.members.code import MemberCodes
from backend.members.errors import MemberNotFound
from backend.members.tables import IdentityKind, Member, MemberStatus
from backend.membership import service as membership
from backend.membership import standing
from backend.orders import service as orders
from backend.points import service as points
from backend.referrals import service as referrals

SEARCH_COLUMNS = (
    'm."id", m."nickname", m."status", m."enrolled_store", m."enrolled_via", m."created_at", m."tier_code", '
    'm."growth_fen"'
)


@dataclass(frozen=True, slots=True)
class MemberRow:
    id: int
    nickname: str
    status: str
    phone_masked: str | None
    enrolled_store_id: int | None
    enrolled_via: str
    tier_code: str
    growth_fen: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Search:
    """How a search word was read: by phone, member code or id (at most one member), or a nickname."""

    by: str  # phone | member_code | id | nickname | all
    member_id: int | None = None
    nickname: str = ""


def read_search(q: str | None, *, codes: MemberCodes, now: float) -> Search:
    """A phone (the full number: found by its identity's unique index, never by reading every phone), a member code
    scanned from the shopper's screen (not spent: the till's checkout can still take it), a member id, or else a
    part of a nickname."""
    text = (q or "").strip()
    if not text:
        return Search("all")
    if (member_id := codes.member_of(text)) is not None:
        return Search("member_code", member_id if codes.matching_step(text, member_id, now=now) is not None else 0)
    if members.phone_identity(text) is not None:
        return Search("phone")
    if text.isdigit() and len(text) <= 10:
        return Search("id", int(text))
    return Search("nickname", nickname=text)


async def search_members(
    q: str | None,
    *,
    codes: MemberCodes,
    store_ids: frozenset[int] | None,
    tag_id: int | None = None,
    before_id: int | None = None,
    limit: int = 20,
) -> tuple[Search, list[MemberRow]]:
    """Members by `q` (see read_search), newest first; a store manager's (`store_ids`) only their stores'."""
    search = read_search(q, codes=codes, now=time.time())
    return search, await _members(search, q, store_ids=store_ids, tag_id=tag_id, before_id=before_id, limit=limit)


async def _members(
    search: Search,
    q: str | None,
    *,
    store_ids: frozenset[int] | None,
    tag_id: int | None,
    before_id: int | None,
    limit: int,
) -> list[MemberRow]:
    where, args = [], []
    phone = members.phone_identity(q or "") if search.by == "phone" else None
    if search.by in ("phone", "member_code", "id"):
        member_id = await members.member_by_identity(IdentityKind.phone, phone) if phone else search.member_id
        if not member_id:
            return []
        if store_ids is None and tag_id is None and before_id is None:  # HQ's look-up of one member: prepared
            return await _one_member(member_id, active_only=search.by != "id", phone=phone)
        where.append('m."id" = {}')
        args.append(member_id)
    elif search.by == "nickname":
        operator, pattern = like(search.nickname)
        where.append(f'm."nickname" {operator} {{}}')
        args.append(pattern)
    if search.by != "id":  # an id names a merged member too: staff follow it to the survivor
        where.append("m.\"status\" = 'active'")
    if tag_id is not None:
        where.append('EXISTS (SELECT 1 FROM "member_tag" t WHERE t."member" = m."id" AND t."tag" = {})')
        args.append(tag_id)
    if before_id is not None:
        where.append('m."id" < {}')
        args.append(before_id)
    scope, scope_args = membership.visible_sql(store_ids)
    if scope:
        where.append(scope)
        args += scope_args
    condition = " AND ".join(where) or "1 = 1"
    sql = f'SELECT {SEARCH_COLUMNS} FROM "member" m WHERE {condition} ORDER BY m."id" DESC LIMIT {{}}'
    rows = [dict(row) for row in await get_engine().run_querystring(QueryString(sql, *args, limit))]
    phones = await members.phones_masked([row["id"] for row in rows])
    return [_row(row, phones.get(row["id"])) for row in rows]


_ONE = Prepared(
    lambda member_id: (
        Member.select(
            Member.id,
            Member.nickname,
            Member.status,
            Member.enrolled_store,
            Member.enrolled_via,
            Member.created_at,
            Member.tier_code,
            Member.growth_fen,
        )
        .where(Member.id == member_id)
        .first()
    )
)


async def _one_member(member_id: int, *, active_only: bool, phone: str | None) -> list[MemberRow]:
    row = await _ONE.run(member_id)
    if row is None or (active_only and row["status"] != MemberStatus.active.value):
        return []
    masked = members.mask_phone(phone) if phone else (await members.phones_masked([member_id])).get(member_id)
    return [_row(row, masked)]


def _row(row: dict[str, Any], phone_masked: str | None) -> MemberRow:
    return MemberRow(
        id=row["id"],
        nickname=row["nickname"],
        status=row["status"],
        phone_masked=phone_masked,
        enrolled_store_id=row["enrolled_store"],
        enrolled_via=row["enrolled_via"],
        tier_code=row["tier_code"],
        growth_fen=int(row["growth_fen"]),
        created_at=as_moment(row["created_at"]),
    )


@dataclass(frozen=True, slots=True)
class MemberPage:
    member: MemberRow
    identities: list[members.IdentityRecord]
    balance: int
    debt: int
    lots: list[points.LotRecord]
    held: standing.Standing
    tags: list[membership.TagRecord]
    recent_orders: list[orders.OrderView]
    merges: list[dict[str, Any]]
    referred_by: int | None
    brought_in: list[referrals.BroughtIn]


async def member_page(member_id: int, *, store_ids: frozenset[int] | None, staff_id: int) -> MemberPage:
    """Everything staff may see of one member; another store's member does not exist for a store manager, and a
    manager sees only the member's orders at their stores."""
    found = await _members(Search("id", member_id), None, store_ids=store_ids, tag_id=None, before_id=None, limit=1)
    if not found:
        raise MemberNotFound(member_ids=[member_id])
    now = utcnow()
    balance, debt = await points.balance_of(member_id)
    which = orders.OrderFilter(member=member_id, staff_scope=None if store_ids is None else staff_id)
    return MemberPage(
        member=found[0],
        identities=await members.member_identities(member_id),
        balance=balance,
        debt=debt,
        lots=await points.open_lots(member_id),
        held=await standing.standing(member_id, now),
        tags=await membership.member_tags(member_id),
        recent_orders=await orders.list_orders(which, limit=10),
        merges=await members.member_merges(member_id),
        referred_by=await referrals.referrer_of(member_id),
        brought_in=(await referrals.member_referrals(member_id))[:20],
    )
