"""Members and the identities that name them."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.query.functions.aggregate import Count

from backend.audit import service as audit
from backend.core.clock import utcnow
from backend.core.db import Prepared, heavy_reads, insert_row, is_unique_violation, write_transaction
from backend.core.kv import KV
from backend.core.ratelimit import release_attempt, reserve_attempt
from backend.core.recent import Recent
from backend.members import enrolments, merges
from backend.members.code import STEP_SECONDS, MemberCodes
from backend.members.errors import (
    AlreadyMerged,
    AvatarNotOurs,
    InvalidNickname,
    MemberCodeNotRecognised,
    MemberCodeUsed,
    MemberNotFound,
    MergeIntoSelf,
    PayerUnknown,
    PhoneWatermarkMismatch,
    TooManyLookups,
)
from backend.members.tables import (
    EnrolmentChannel,
    IdentityKind,
    Member,
    MemberIdentity,
    MemberMerge,
    MemberStatus,
    MergeReason,
)
from backend.members.wechat import WeChatPhone, WeChatSession

logger = logging.getLogger(__name__)

ENROL_ATTEMPTS = 3


def mask_phone(phone: str) -> str:
    """+8613800138000 shows as 138****8000, as Chinese apps show it; other numbers keep their last four."""
    if phone.startswith("+86") and len(phone) == 14:
        return f"{phone[3:6]}****{phone[-4:]}"
    return "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_identity(kind: IdentityKind, value: str) -> str:
    """An identity as staff see it: a phone as mask_phone shows it; anything else its first and last few."""
    if kind == IdentityKind.phone:
        return mask_phone(value)
    name = value.rpartition(":")[2]  # an openid's app id prefix is not shown
    return f"{name[:4]}****{name[-4:]}" if len(name) > 10 else "****"


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    kind: IdentityKind
    masked: str
    created_at: datetime


async def member_identities(member_id: int) -> list[IdentityRecord]:
    rows = (
        await MemberIdentity.select(MemberIdentity.kind, MemberIdentity.value, MemberIdentity.created_at)
        .where(MemberIdentity.member == member_id)
        .order_by(MemberIdentity.id)
    )
    records = []
    for row in rows:
        kind = IdentityKind(row["kind"])
        records.append(IdentityRecord(kind, mask_identity(kind, row["value"]), row["created_at"]))
    return records


async def phones_masked(member_ids: list[int]) -> dict[int, str]:
    """Each member's phone, masked, for those who have one."""
    if not member_ids:
        return {}
    rows = await MemberIdentity.select(MemberIdentity.member, MemberIdentity.value).where(
        MemberIdentity.member.is_in(member_ids) & (MemberIdentity.kind == IdentityKind.phone)
    )
    return {row["member"]: mask_phone(row["value"]) for row in rows}


def phone_identity(text: str) -> str | None:
    """The phone identity a typed number names (13800138000, +86 138 0013 8000), or None if it is not one."""
    digits = "".join(text.split()).replace("-", "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return f"+86{digits}" if len(digits) == 11 and digits.isdigit() and digits[0] == "1" else None


async def member_merges(member_id: int) -> list[dict[str, Any]]:
    """The merges this member took part in (as the survivor or the one folded in), newest first."""
    return (
        await MemberMerge.select()
        .where((MemberMerge.survivor == member_id) | (MemberMerge.merged == member_id))
        .order_by(MemberMerge.id, ascending=False)
        .limit(50)
    )


_BY_IDENTITY = Prepared(
    lambda kind, value: (
        MemberIdentity.select(MemberIdentity.member)
        .where((MemberIdentity.kind == kind) & (MemberIdentity.value == value))
        .first()
    )
)


async def member_by_identity(kind: IdentityKind, value: str) -> int | None:
    row = await _BY_IDENTITY.run(kind, value)
    return row["member"] if row else None


async def attach_identity(member_id: int, kind: IdentityKind, value: str) -> None:
    """Record another name of a member; a name another member already holds is left where it is."""
    try:
        async with write_transaction():
            await MemberIdentity.insert(MemberIdentity(member=member_id, kind=kind, value=value))
    except Exception as error:
        if not is_unique_violation(error):
            raise
        logger.info("identity held by another member", extra={"member_id": member_id, "kind": kind.value})


def openid_value(app_id: str, openid: str) -> str:
    return f"{app_id}:{openid}"


_OPENIDS = Prepared(
    lambda member_id, kind: MemberIdentity.select(MemberIdentity.value).where(
        (MemberIdentity.member == member_id) & (MemberIdentity.kind == kind)
    )
)


async def payer_openid(member_id: int, app_id: str) -> str:
    """The openid WeChat Pay charges this member as, in the mini-program `app_id`."""
    prefix = openid_value(app_id, "")
    rows = await _OPENIDS.run(member_id, IdentityKind.wechat_openid)
    for row in rows:
        if row["value"].startswith(prefix):
            return row["value"][len(prefix) :]
    raise PayerUnknown(member_id=member_id)


async def find_or_enrol_wechat_member(
    session: WeChatSession, *, channel: EnrolmentChannel, store_id: int | None = None
) -> tuple[int, bool]:
    """The member this WeChat user is, enrolling them on first sight; answers (member_id, is_new).

    When the openid and the unionid name two different members, they are one person:
    the two are merged and the older survives.
    """
    names = [(IdentityKind.wechat_openid, openid_value(session.app_id, session.openid))]
    if session.unionid:
        names.append((IdentityKind.wechat_unionid, session.unionid))
    for _ in range(ENROL_ATTEMPTS):
        held = {kind: await member_by_identity(kind, value) for kind, value in names}
        by_openid, by_unionid = held[IdentityKind.wechat_openid], held.get(IdentityKind.wechat_unionid)
        if by_openid is not None and by_unionid is not None and by_openid != by_unionid:
            return await merge_by_age(by_openid, by_unionid, reason=MergeReason.unionid), False
        member_id = by_openid or by_unionid
        if member_id is not None:
            for kind, value in names:
                if held[kind] is None:
                    await attach_identity(member_id, kind, value)
            return member_id, False
        try:
            async with write_transaction():
                member_id = await insert_row(Member, enrolled_via=channel, enrolled_store=store_id)
                for kind, value in names:
                    await insert_row(MemberIdentity, member=member_id, kind=kind, value=value)
                await enrolments.enrolled(enrolments.Enrolled(member_id, channel, store_id, utcnow()))
        except Exception as error:
            if not is_unique_violation(error):
                raise
            continue  # enrolled by a concurrent request a moment ago: read it back
        logger.info("member enrolled", extra={"member_id": member_id, "channel": channel.value})
        return member_id, True
    raise RuntimeError("enrolment kept racing with concurrent requests")


async def enrol_payer(session: WeChatSession, *, store_id: int, now: datetime) -> tuple[int, bool]:
    """Inside the caller's write transaction: the member paying with this openid, enrolled if new.

    A concurrent enrolment of the same payer breaks the identity's unique constraint; the
    caller's transaction then fails as a whole and is retried, finding the member.
    """
    value = openid_value(session.app_id, session.openid)
    member_id = await member_by_identity(IdentityKind.wechat_openid, value)
    if member_id is not None:
        return member_id, False
    member_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier, enrolled_store=store_id)
    await insert_row(MemberIdentity, member=member_id, kind=IdentityKind.wechat_openid, value=value)
    await enrolments.enrolled(enrolments.Enrolled(member_id, EnrolmentChannel.cashier, store_id, now))
    return member_id, True  # the caller logs the enrolment with the payment that made it


_ACTIVE = Prepared(
    lambda member_id, status: (
        Member.select(Member.id).where((Member.id == member_id) & (Member.status == status)).first()
    )
)


# Every member request asks whether its member is still active (a merged member's token dies). The answer
# "active" is kept for a moment in this process; a merge here forgets it at once, and a worker that did not
# run the merge sees it within ACTIVE_FOR_SECONDS.
ACTIVE_FOR_SECONDS = 2.0
_active: Recent[int, bool] = Recent(ACTIVE_FOR_SECONDS)


async def is_active_member(member_id: int) -> bool:
    if _active.get(member_id):
        return True
    if await _ACTIVE.run(member_id, MemberStatus.active) is None:
        return False
    return _active.put(member_id, True)


def forget_activity(member_id: int | None = None) -> None:
    """After a merge (or, with no id, a wiped database): ask the database again."""
    _active.forget(member_id)


@dataclass(frozen=True, slots=True)
class MemberProfile:
    id: int
    nickname: str
    avatar_url: str
    phone_masked: str | None
    enrolled_store_id: int | None
    enrolled_via: EnrolmentChannel
    created_at: datetime


async def member_profile(member_id: int) -> MemberProfile:
    member = (
        await Member.select(
            Member.id, Member.nickname, Member.avatar_url, Member.enrolled_store, Member.enrolled_via, Member.created_at
        )
        .where(Member.id == member_id)
        .first()
    )
    if member is None:
        raise MemberNotFound(member_ids=[member_id])
    phone = (
        await MemberIdentity.select(MemberIdentity.value)
        .where((MemberIdentity.member == member_id) & (MemberIdentity.kind == IdentityKind.phone))
        .first()
    )
    return MemberProfile(
        id=member["id"],
        nickname=member["nickname"],
        avatar_url=member["avatar_url"],
        phone_masked=mask_phone(phone["value"]) if phone else None,
        enrolled_store_id=member["enrolled_store"],
        enrolled_via=EnrolmentChannel(member["enrolled_via"]),
        created_at=member["created_at"],
    )


NICKNAME_MAX = 20


def check_nickname(nickname: str) -> None:
    """1 to 20 characters a poster can draw: no control characters, no line breaks."""
    if not 1 <= len(nickname) <= NICKNAME_MAX or not nickname.isprintable():
        raise InvalidNickname(details={"nickname": f"1 to {NICKNAME_MAX} printable characters"})


async def update_profile(
    member_id: int, *, nickname: str | None, avatar_url: str | None, avatar_owned: bool = False
) -> MemberProfile:
    """What the shopper typed in WeChat's avatar-and-nickname form. `avatar_owned`: the caller checked that
    `avatar_url` is an avatar this server keeps for this member (the posters domain does)."""
    changes = {}
    if nickname is not None:
        changes[Member.nickname] = nickname
    if avatar_url is not None:
        if not avatar_owned:
            raise AvatarNotOurs(member_id=member_id)
        changes[Member.avatar_url] = avatar_url
    if changes:
        async with write_transaction():
            await Member.update(changes).where(Member.id == member_id)
        logger.info(
            "profile updated", extra={"member_id": member_id, "fields": ",".join(c._meta.name for c in changes)}
        )
    return await member_profile(member_id)


# The member code at the till: a code is taken once, by the first till that scans it. A cashier who looks
# the member up first leaves a pass for one checkout with that code at the same till (staff, store and
# till) within PASS_SECONDS: the till may then check out a little later than the code's own life.
PASS_SECONDS = 120
PASS_STEPS = PASS_SECONDS // STEP_SECONDS + 1  # the code's own step and those the pass outlives
# The first sighting of a code is remembered for longer than a pass lives, so that a code seen once is
# never taken as new again while its pass could still be spent.
SIGHTING_SECONDS = PASS_SECONDS + 2 * STEP_SECONDS


@dataclass(frozen=True, slots=True)
class Till:
    """Where a member code is scanned: the staff member, the store (None: the lookup named none) and the till."""

    staff_id: int
    store_id: int | None
    till: str

    def token(self, *, any_store: bool = False) -> bytes:
        store = "*" if any_store or self.store_id is None else str(self.store_id)
        return f"{self.staff_id}|{store}|{self.till}".encode()


def _counters(till: Till, failure_limit: int) -> tuple[tuple[str, int], ...]:
    return (
        (f"mall:members:lookup_fail:staff:{till.staff_id}", failure_limit),
        (f"mall:members:lookup_fail:till:{till.till}", failure_limit),
    )


async def _recognise(
    code: str, *, codes: MemberCodes, kv: KV, till: Till, now: float, failure_limit: int, window: int, steps: int
) -> tuple[int, int, tuple[tuple[str, int], ...]]:
    """The member and time step a scanned code names; unrecognised codes are limited per staff and till."""
    counters = _counters(till, failure_limit)
    retry_after = await reserve_attempt(kv, counters, window=window)
    if retry_after is not None:
        raise TooManyLookups(retry_after=retry_after, staff_id=till.staff_id)
    member_id = codes.member_of(code)
    step = codes.matching_step(code, member_id, now=now, steps=steps) if member_id else None
    if step is None or not await is_active_member(member_id):
        raise MemberCodeNotRecognised(staff_id=till.staff_id)
    return member_id, step, counters


def _sighting_key(member_id: int, step: int) -> str:
    return f"mall:members:code_used:{member_id}:{step}"


def _pass_key(member_id: int, step: int) -> str:
    return f"mall:members:code_pass:{member_id}:{step}"


async def look_up_member_code(
    code: str, *, codes: MemberCodes, kv: KV, till: Till, now: float, failure_limit: int, window: int
) -> int:
    """The member a till scanned to look them up; the code is then good for one checkout at this till."""
    member_id, step, counters = await _recognise(
        code, codes=codes, kv=kv, till=till, now=now, failure_limit=failure_limit, window=window, steps=2
    )
    if not await kv.set_if_absent(_sighting_key(member_id, step), b"1", expires_in=SIGHTING_SECONDS):
        raise MemberCodeUsed(member_id=member_id)
    await kv.set(_pass_key(member_id, step), till.token(), expires_in=PASS_SECONDS)
    await release_attempt(kv, counters)
    logger.info("member code accepted", extra={"member_id": member_id, "staff_id": till.staff_id})
    return member_id


@dataclass(frozen=True, slots=True)
class TakenCode:
    """A member code a checkout has taken, and how, so that a checkout refused before it placed an order can
    leave the code as it found it: `token` is the till's pass it spent (None: the code's first sighting),
    which would have lived until `pass_ends` (a `time.time()`)."""

    member_id: int
    key: str
    token: bytes | None = None
    pass_ends: float = 0.0


async def take_member_code(
    code: str, *, codes: MemberCodes, kv: KV, till: Till, now: float, failure_limit: int, window: int
) -> TakenCode:
    """The member a checkout names by their code: a code no till has seen, or one this till looked up
    within PASS_SECONDS (spent by this checkout); any other till is refused."""
    member_id, step, counters = await _recognise(
        code, codes=codes, kv=kv, till=till, now=now, failure_limit=failure_limit, window=window, steps=PASS_STEPS
    )
    current = int(now) // STEP_SECONDS
    taken = None
    sighting = _sighting_key(member_id, step)
    if step >= current - 1 and await kv.set_if_absent(sighting, b"1", expires_in=SIGHTING_SECONDS):
        taken = TakenCode(member_id, sighting)
    else:
        pass_key = _pass_key(member_id, step)
        passes = (till.token(), till.token(any_store=True)) if till.store_id is not None else (till.token(),)
        lives = await kv.ttl(pass_key)
        for token in passes:
            if lives is not None and await kv.pop_if_equal(pass_key, token):
                taken = TakenCode(member_id, pass_key, token, now + lives)
                break
    if taken is None:
        raise MemberCodeUsed(member_id=member_id)
    await release_attempt(kv, counters)
    return taken


async def give_back_member_code(taken: TakenCode, *, kv: KV, now: float) -> None:
    """The checkout that took the code was refused before it placed an order (a mistyped payment code, too
    many points): the till's retry may take it again, within the life it had left."""
    if taken.token is None:
        await kv.delete(taken.key)
    elif (left := taken.pass_ends - now) >= 0.001:  # else the pass would have lapsed by now anyway
        await kv.set(taken.key, taken.token, expires_in=left)


async def merge_members(
    survivor_id: int, merged_id: int, *, reason: MergeReason, staff_id: int | None = None, now: datetime | None = None
) -> int:
    """Fold one member into another: identities, points with their lots and expiry dates, and what
    later domains own move to the survivor; an audit row records it. Idempotent; answers the survivor."""
    if survivor_id == merged_id:
        raise MergeIntoSelf(member_id=survivor_id)
    now = now or utcnow()
    try:
        async with write_transaction():
            # Touch both rows in one statement (on PostgreSQL: locks them) and read where they stand.
            rows = (
                await Member.update({Member.status: Member.status})
                .where(Member.id.is_in([survivor_id, merged_id]))
                .returning(Member.id, Member.status, Member.merged_into)
            )
            found = {row["id"]: row for row in rows}
            if survivor_id not in found or merged_id not in found:
                raise MemberNotFound(member_ids=[survivor_id, merged_id])
            if found[merged_id]["merged_into"] == survivor_id:
                return survivor_id  # done before: the same answer again
            if found[merged_id]["status"] != MemberStatus.active or found[survivor_id]["status"] != MemberStatus.active:
                raise AlreadyMerged(survivor_id=survivor_id, merged_id=merged_id)
            await Member.update({Member.status: MemberStatus.merged, Member.merged_into: survivor_id}).where(
                (Member.id == merged_id) & (Member.status == MemberStatus.active)
            )
            identities = (
                await MemberIdentity.update({MemberIdentity.member: survivor_id})
                .where(MemberIdentity.member == merged_id)
                .returning(MemberIdentity.id)
            )
            # Each domain that keeps rows per member moves them here, in this transaction.
            moved = await merges.move_everything(survivor_id, merged_id, now)
            await insert_row(
                MemberMerge,
                survivor=survivor_id,
                merged=merged_id,
                reason=reason,
                staff=staff_id,
                identities_moved=len(identities),
                points_moved=moved.points,
                debt_moved=moved.debt,
                lots_moved=moved.lots,
                orders_moved=moved.orders,
                seats_moved=moved.seats,
                created_at=now,
            )
            if staff_id is not None:  # HQ's merge; those of a shared phone or unionid are the shopper's doing
                await audit.record(
                    "member.merge",
                    "member",
                    merged_id,
                    before={"status": "active", "merged_into": None},
                    after={"status": "merged", "merged_into": survivor_id, "points_moved": moved.points},
                )
    except Exception as error:
        if not is_unique_violation(error):
            raise
        # A concurrent merge of the same member committed first.
        row = await MemberMerge.select(MemberMerge.survivor).where(MemberMerge.merged == merged_id).first()
        if row is None or row["survivor"] != survivor_id:
            raise AlreadyMerged(survivor_id=survivor_id, merged_id=merged_id) from None
        return survivor_id
    forget_activity(merged_id)
    logger.info("members merged", extra={"member_id": survivor_id, "merged_id": merged_id, "reason": reason.value})
    return survivor_id


def older_and_newer(first: dict, second: dict) -> tuple[int, int]:
    """The older member survives a merge; ties go to the lower id."""
    a, b = sorted((first, second), key=lambda m: (m["created_at"], m["id"]))
    return a["id"], b["id"]


async def merge_by_age(member_a: int, member_b: int, *, reason: MergeReason) -> int:
    rows = await Member.select(Member.id, Member.created_at).where(Member.id.is_in([member_a, member_b]))
    if len(rows) != 2:
        raise MemberNotFound(member_ids=[member_a, member_b])
    survivor, merged = older_and_newer(rows[0], rows[1])
    return await merge_members(survivor, merged, reason=reason)


async def bind_phone(member_id: int, phone: WeChatPhone, *, app_id: str) -> int:
    """Give a member the phone WeChat vouched for; answers the member who holds it afterwards.

    A phone another member already holds means the two are one person: they are
    merged and the older survives, which may not be the caller.
    """
    if phone.watermark_app_id != app_id:
        raise PhoneWatermarkMismatch(member_id=member_id)
    holder = await member_by_identity(IdentityKind.phone, phone.phone)
    if holder == member_id:
        return member_id
    if holder is not None:
        return await merge_by_age(member_id, holder, reason=MergeReason.phone)
    try:
        async with write_transaction():
            # One phone per member: a new number replaces the old one.
            await MemberIdentity.delete().where(
                (MemberIdentity.member == member_id) & (MemberIdentity.kind == IdentityKind.phone)
            )
            await insert_row(MemberIdentity, member=member_id, kind=IdentityKind.phone, value=phone.phone)
    except Exception as error:
        if not is_unique_violation(error):
            raise
        # Bound by another member a moment ago: the same person again.
        holder = await member_by_identity(IdentityKind.phone, phone.phone)
        return (
            member_id
            if holder in (None, member_id)
            else await merge_by_age(member_id, holder, reason=MergeReason.phone)
        )
    logger.info("phone bound", extra={"member_id": member_id})
    return member_id


async def enrolments_by_store(since: datetime, until: datetime) -> dict[tuple[int, EnrolmentChannel], int]:
    """How many members each store enrolled in [since, until), by channel (merged members included: they were new
    when they came)."""
    with heavy_reads():
        rows = (
            await Member.select(Member.enrolled_store, Member.enrolled_via, Count().as_alias("members"))
            .where((Member.created_at >= since) & (Member.created_at < until) & Member.enrolled_store.is_not_null())
            .group_by(Member.enrolled_store, Member.enrolled_via)
        )
    return {(row["enrolled_store"], EnrolmentChannel(row["enrolled_via"])): int(row["members"]) for row in rows}
