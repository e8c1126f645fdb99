"""Tags on members and segments over them: HQ's tags, set by HQ or a store's manager; segments as rules that
the database evaluates (see `segments`), counted, paged and exported."""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from piccolo.querystring import QueryString

from backend.audit import service as audit
from backend.core.clock import utcnow
from backend.core.db import get_engine, heavy_reads, is_unique_violation, write_transaction
from backend.core.schema import given
from backend.core.spreadsheet import streamed, text_cell
from backend.members import merges
from backend.members import service as members
from backend.members.errors import MemberNotFound
from backend.members.tables import EnrolmentChannel, Member, MemberStatus
from backend.membership import segments, standing
from backend.membership.errors import (
    NoRules,
    RuleIncomplete,
    RulesConflict,
    TagNameTaken,
    TagNotFound,
    UnknownSegmentStores,
    UnknownSegmentTags,
    UnknownTags,
    UnknownTier,
)
from backend.membership.schemas import SegmentCreate, SegmentRules, TagCreate
from backend.membership.tables import MemberTag, Segment, Tag
from backend.stores import service as stores

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TagRecord:
    id: int
    name: str
    group: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    id: int
    name: str
    rules: SegmentRules
    created_at: datetime
    created_by: int | None


@dataclass(frozen=True, slots=True)
class SegmentMember:
    id: int
    nickname: str
    phone_masked: str | None
    enrolled_store_id: int | None
    enrolled_via: EnrolmentChannel
    created_at: datetime


# Tags ------------------------------------------------------------------------------------------------

_TAG_COLUMNS = (Tag.id, Tag.name, Tag.group_name, Tag.created_at)


def _tag(row: dict[str, Any]) -> TagRecord:
    return TagRecord(id=row["id"], name=row["name"], group=row["group_name"] or None, created_at=row["created_at"])


async def create_tag(data: TagCreate, *, staff_id: int) -> TagRecord:
    try:
        async with write_transaction():
            rows = await Tag.insert(
                Tag(name=data.name, group_name=data.group or "", created_at=utcnow(), created_by=staff_id)
            ).returning(*_TAG_COLUMNS)
            await audit.record("tag.create", "tag", rows[0]["id"], after=given(data))
    except Exception as error:
        if is_unique_violation(error):
            raise TagNameTaken(details={"name": data.name, "group": data.group}) from None
        raise
    logger.info("tag created", extra={"tag_id": rows[0]["id"]})
    return _tag(rows[0])


async def list_tags() -> list[TagRecord]:
    """Every tag, by group then name (ungrouped first)."""
    rows = await Tag.select(*_TAG_COLUMNS).order_by(Tag.group_name, Tag.name, Tag.id)
    return [_tag(row) for row in rows]


async def member_tags(member_id: int) -> list[TagRecord]:
    rows = (
        await Tag.select(*_TAG_COLUMNS)
        .where(Tag.id.is_in(MemberTag.select(MemberTag.tag).where(MemberTag.member == member_id)))
        .order_by(Tag.group_name, Tag.name, Tag.id)
    )
    return [_tag(row) for row in rows]


def visible_sql(store_ids: frozenset[int] | None) -> tuple[str, list[Any]]:
    """The condition (and its arguments) that the member row `m` is one of these stores' members: enrolled at one
    of them, or with an order at one ("" and none for HQ's None: every member)."""
    if store_ids is None:
        return "", []
    ids = sorted(store_ids)
    if not ids:
        return "1 = 0", []
    return (
        f'(m."enrolled_store" IN ({segments.marks(ids)}) OR EXISTS (SELECT 1 FROM "sale_order" o '
        f'WHERE o."member" = m."id" AND o."store" IN ({segments.marks(ids)})))',
        ids + ids,
    )


async def ensure_member_visible(member_id: int, store_ids: frozenset[int] | None) -> None:
    """The member exists and is active; for a store's staff (`store_ids`), is one of their stores' members:
    enrolled at one of them, or with an order at one. Anyone else's member does not exist for them."""
    sql = 'SELECT m."id" FROM "member" m WHERE m."id" = {} AND m."status" = {}'
    args: list[Any] = [member_id, MemberStatus.active.value]
    scope, scope_args = visible_sql(store_ids)
    if scope:
        sql += f" AND {scope}"
    if not await get_engine().run_querystring(QueryString(sql, *args, *scope_args)):
        raise MemberNotFound(member_ids=[member_id])


async def add_member_tags(member_id: int, tag_ids: list[int], *, staff_id: int) -> list[TagRecord]:
    """Put the tags on the member; those already on stay as they were. Answers the member's tags."""
    wanted = sorted(set(tag_ids))
    now = utcnow()
    async with write_transaction():
        # Hold the member (on PostgreSQL: lock the row) so that a merge folding them away waits, or is seen.
        held = (
            await Member.update({Member.status: Member.status})
            .where((Member.id == member_id) & (Member.status == MemberStatus.active))
            .returning(Member.id)
        )
        if not held:
            raise MemberNotFound(member_ids=[member_id])
        found = {row["id"] for row in await Tag.select(Tag.id).where(Tag.id.is_in(wanted))}
        if missing := [tag_id for tag_id in wanted if tag_id not in found]:
            raise UnknownTags(details={"tagIds": missing})
        held_before = [row["tag"] for row in await MemberTag.select(MemberTag.tag).where(MemberTag.member == member_id)]
        await MemberTag.insert(
            *(MemberTag(member=member_id, tag=tag_id, created_at=now, created_by=staff_id) for tag_id in wanted)
        ).on_conflict(target=(MemberTag.tag, MemberTag.member), action="DO NOTHING")
        await audit.record(
            "member.tag",
            "member",
            member_id,
            before={"tag_ids": sorted(held_before)},
            after={"tag_ids": sorted(set(held_before) | set(wanted))},
        )
    logger.info("member tagged", extra={"member_id": member_id, "tags": len(wanted), "staff_id": staff_id})
    return await member_tags(member_id)


async def remove_member_tag(member_id: int, tag_id: int) -> None:
    """Take the tag off the member; a tag the member does not hold is already off."""
    async with write_transaction():
        if not await Tag.exists().where(Tag.id == tag_id):
            raise TagNotFound(tag_id=tag_id)
        removed = (
            await MemberTag.delete()
            .where((MemberTag.member == member_id) & (MemberTag.tag == tag_id))
            .returning(MemberTag.id)
        )
        if removed:
            await audit.record("member.untag", "member", member_id, before={"tag_id": tag_id}, after={"tag_id": None})


@merges.on_merge(merges.TAGS)
async def move_tags(survivor_id: int, merged_id: int, now: datetime) -> None:
    """The merged member's tags become the survivor's: one row per tag, the survivor's own kept."""
    await MemberTag.delete().where(
        (MemberTag.member == merged_id)
        & MemberTag.tag.is_in(MemberTag.select(MemberTag.tag).where(MemberTag.member == survivor_id))
    )
    await MemberTag.update({MemberTag.member: survivor_id}).where(MemberTag.member == merged_id)


# Segments --------------------------------------------------------------------------------------------


async def check_rules(rules: SegmentRules) -> None:
    """Refuse rules that name what does not exist or that cannot hold together."""
    if rules == SegmentRules():
        raise NoRules()
    if rules.tier_codes:
        known = {tier.code for tier in await standing.ladder()}
        if unknown := [code for code in rules.tier_codes if code not in known]:
            raise UnknownTier(details={"tierCodes": unknown})
    low, high = rules.min_spend_fen, rules.max_spend_fen
    if low is not None and high is not None and low > high:
        raise RulesConflict(details={"minSpendFen": low, "maxSpendFen": high})
    within, before = rules.last_paid_within_days, rules.last_paid_before_days
    if within is not None and before is not None and within <= before:
        raise RulesConflict(details={"lastPaidWithinDays": within, "lastPaidBeforeDays": before})
    if rules.spend_window_days is not None and low is None and high is None and rules.min_orders is None:
        raise RuleIncomplete(
            "spendWindowDays applies to minSpendFen, maxSpendFen or minOrders: give one of them.",
            details={"spendWindowDays": rules.spend_window_days},
        )
    if rules.tag_ids:
        wanted = sorted(set(rules.tag_ids))
        found = {row["id"] for row in await Tag.select(Tag.id).where(Tag.id.is_in(wanted))}
        if missing := [tag_id for tag_id in wanted if tag_id not in found]:
            raise UnknownSegmentTags(details={"tagIds": missing})
    if rules.store_ids:
        wanted = sorted(set(rules.store_ids))
        found = await stores.store_codes(wanted)
        if missing := [store_id for store_id in wanted if store_id not in found]:
            raise UnknownSegmentStores(details={"storeIds": missing})


def _tidy(rules: SegmentRules) -> SegmentRules:
    """The rules as kept: each id once, in order; one channel as a list of one."""
    return msgspec.structs.replace(
        rules,
        tag_ids=sorted(set(rules.tag_ids)) if rules.tag_ids else None,
        store_ids=sorted(set(rules.store_ids)) if rules.store_ids else None,
        enrolled_via=sorted(set(rules.channels), key=lambda c: c.value) if rules.channels else None,
    )


_SEGMENT_COLUMNS = (Segment.id, Segment.name, Segment.rules, Segment.created_at, Segment.created_by)


def _segment(row: dict[str, Any]) -> SegmentRecord:
    return SegmentRecord(
        id=row["id"],
        name=row["name"],
        rules=msgspec.json.decode(row["rules"], type=SegmentRules),
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


async def create_segment(data: SegmentCreate, *, staff_id: int) -> SegmentRecord:
    await check_rules(data.rules)
    rules = _tidy(data.rules)
    async with write_transaction():
        rows = await Segment.insert(
            Segment(
                name=data.name,
                rules=msgspec.json.encode(rules).decode(),
                created_at=utcnow(),
                created_by=staff_id,
            )
        ).returning(*_SEGMENT_COLUMNS)
        await audit.record("segment.create", "segment", rows[0]["id"], after={"name": data.name, "rules": rules})
    logger.info("segment created", extra={"segment_id": rows[0]["id"], "staff_id": staff_id})
    return _segment(rows[0])


async def find_segment(segment_id: int) -> SegmentRecord | None:
    row = await Segment.select(*_SEGMENT_COLUMNS).where(Segment.id == segment_id).first()
    return _segment(row) if row is not None else None


async def list_segments(*, limit: int, before_id: int | None = None) -> list[SegmentRecord]:
    """Segments, newest first."""
    query = Segment.select(*_SEGMENT_COLUMNS).order_by(Segment.id, ascending=False).limit(limit)
    if before_id is not None:
        query = query.where(Segment.id < before_id)
    return [_segment(row) for row in await query]


async def count_members(rules: SegmentRules, *, now: datetime) -> int:
    """How many members the rules match at `now`."""
    sql, args = segments.count_sql(rules, now=now)
    with heavy_reads():
        rows = await get_engine().run_querystring(QueryString(sql, *args))
    return int(rows[0]["n"])


async def members_page(
    rules: SegmentRules, *, now: datetime, limit: int, before_id: int | None = None
) -> list[SegmentMember]:
    """Up to `limit` matching members, newest first, before `before_id`; with their phones masked."""
    sql, args = segments.page_sql(rules, now=now, limit=limit, before_id=before_id)
    with heavy_reads():
        rows = await get_engine().run_querystring(QueryString(sql, *args))
        phones = await members.phones_masked([row["id"] for row in rows])
    return [
        SegmentMember(
            id=row["id"],
            nickname=row["nickname"],
            phone_masked=phones.get(row["id"]),
            enrolled_store_id=row["enrolled_store"],
            enrolled_via=EnrolmentChannel(row["enrolled_via"]),
            created_at=row["created_at"],
        )
        for row in rows
    ]


CSV_HEADER = [
    "会员ID member id",
    "昵称 nickname",
    "手机 phone",
    "入会门店 store id",
    "入会渠道 channel",
    "入会时间 enrolled at",
]
CSV_BATCH = 2000


def members_csv(rules: SegmentRules, *, now: datetime) -> AsyncIterator[bytes]:
    """Every matching member as CSV rows (UTF-8 with BOM), read a batch at a time: never all at once."""

    async def batches() -> AsyncIterator[list[list[Any]]]:
        before_id: int | None = None
        while batch := await members_page(rules, now=now, limit=CSV_BATCH, before_id=before_id):
            yield [
                [
                    member.id,
                    text_cell(member.nickname),
                    member.phone_masked or "",
                    member.enrolled_store_id or "",
                    member.enrolled_via.value,
                    member.created_at.isoformat(),
                ]
                for member in batch
            ]
            if len(batch) < CSV_BATCH:
                return
            before_id = batch[-1].id

    return streamed(CSV_HEADER, batches())
