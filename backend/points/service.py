"""The points ledger: one balance per member across every store.

Every change is an append-only entry under a unique idempotency key, in the same
transaction as the guarded update of the member's account row. Updating that row
first also serializes the member's concurrent operations on PostgreSQL (the row
lock) as the write lock does on SQLite, so the lot bookkeeping below reads a
stable picture. Invariants, checked by the tests after every step:
balance == sum of entries == sum of unexpired lot remainders, balance >= 0, debt >= 0.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from piccolo.query.functions.aggregate import Sum

from backend.audit import service as audit
from backend.core.clock import utcnow
from backend.core.db import Prepared, heavy_reads, insert_row, is_unique_violation, write_transaction
from backend.core.idempotency import request_hash
from backend.members.tables import Member
from backend.points.errors import IdempotencyConflict, InsufficientPoints
from backend.points.tables import EntryKind, PointsAccount, PointsEntry, PointsLot, PointsLotUse
from backend.settings import Settings

logger = logging.getLogger(__name__)

CREDITS = (EntryKind.earn, EntryKind.reward)  # entries a refund of their source claws back
REVERSIBLE = (*CREDITS, EntryKind.redeem)


@dataclass(frozen=True, slots=True)
class PointsPolicy:
    expiry_months: int = 12
    timezone: str = "Asia/Shanghai"

    def expiry_for(self, earned_at: datetime) -> datetime:
        """The end of the `expiry_months`-th month after the month of earning, in the chain's time zone."""
        local = earned_at.astimezone(ZoneInfo(self.timezone))
        month_index = local.year * 12 + (local.month - 1) + self.expiry_months + 1
        first_after = local.replace(
            year=month_index // 12, month=month_index % 12 + 1, day=1, hour=0, minute=0, second=0, microsecond=0
        )
        return (first_after - timedelta(microseconds=1)).astimezone(earned_at.tzinfo)


@cache
def configured_policy() -> PointsPolicy:
    """The chain's expiry rule, as the environment sets it (POINTS_EXPIRY_MONTHS, POINTS_TIMEZONE)."""
    settings = Settings.from_env()
    return PointsPolicy(expiry_months=settings.points_expiry_months, timezone=settings.points_timezone)


@dataclass(frozen=True, slots=True)
class Expiring:
    points: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class EntryRecord:
    id: int
    kind: EntryKind
    delta: int
    debt_delta: int
    balance_after: int
    store: int | None
    source_type: str
    source_id: str
    reason: str
    created_at: datetime


@dataclass(slots=True)
class StoreLiability:
    """Per issuing or redeeming store (None: HQ): points earned, redeemed, expired, reversed, adjusted, and
    outstanding (the unexpired remainders of the lots the store issued)."""

    store_id: int | None
    earned: int = 0
    redeemed: int = 0
    expired: int = 0
    reversed: int = 0
    adjusted: int = 0
    outstanding: int = 0


@dataclass(frozen=True, slots=True)
class Posted:
    entry_id: int
    kind: EntryKind
    delta: int
    debt_delta: int
    balance: int
    debt: int
    replayed: bool = field(default=False, compare=False)  # the answer of an earlier request with the same key


# Reading ---------------------------------------------------------------------


async def balance_of(member_id: int) -> tuple[int, int]:
    """(balance, debt); a member who never touched points has (0, 0)."""
    row = (
        await PointsAccount.select(PointsAccount.balance, PointsAccount.debt)
        .where(PointsAccount.member == member_id)
        .first()
    )
    return (row["balance"], row["debt"]) if row else (0, 0)


async def upcoming_expiries(member_id: int, *, now: datetime, within: timedelta) -> list[Expiring]:
    rows = (
        await PointsLot.select(PointsLot.expires_at, PointsLot.remaining)
        .where(
            (PointsLot.member == member_id)
            & PointsLot.expired_at.is_null()
            & (PointsLot.remaining > 0)
            & (PointsLot.expires_at <= now + within)
        )
        .order_by(PointsLot.expires_at)
    )
    grouped: dict[datetime, int] = {}
    for row in rows:
        grouped[row["expires_at"]] = grouped.get(row["expires_at"], 0) + row["remaining"]
    return [Expiring(points=points, expires_at=at) for at, points in grouped.items()]


@dataclass(frozen=True, slots=True)
class LotRecord:
    id: int
    store_id: int | None
    points: int
    remaining: int
    expires_at: datetime


async def open_lots(member_id: int, *, limit: int = 50) -> list[LotRecord]:
    """The member's lots with points left, soonest to expire first (as they are spent)."""
    rows = (
        await PointsLot.select(
            PointsLot.id, PointsLot.store, PointsLot.points, PointsLot.remaining, PointsLot.expires_at
        )
        .where((PointsLot.member == member_id) & PointsLot.expired_at.is_null() & (PointsLot.remaining > 0))
        .order_by(PointsLot.expires_at)
        .order_by(PointsLot.id)
        .limit(limit)
    )
    return [
        LotRecord(row["id"], row["store"], int(row["points"]), int(row["remaining"]), row["expires_at"]) for row in rows
    ]


def _entries(member_id: int) -> Any:
    return PointsEntry.select(
        PointsEntry.id,
        PointsEntry.kind,
        PointsEntry.delta,
        PointsEntry.debt_delta,
        PointsEntry.balance_after,
        PointsEntry.store,
        PointsEntry.source_type,
        PointsEntry.source_id,
        PointsEntry.reason,
        PointsEntry.created_at,
    ).where(PointsEntry.member == member_id)


def _entry_record(row: dict[str, Any]) -> EntryRecord:
    return EntryRecord(**{**row, "kind": EntryKind(row["kind"])})


async def entries_page(member_id: int, *, limit: int, before_id: int | None) -> list[EntryRecord]:
    query = _entries(member_id)
    if before_id is not None:
        query = query.where(PointsEntry.id < before_id)
    rows = await query.order_by(PointsEntry.id, ascending=False).limit(limit)
    return [_entry_record(row) for row in rows]


async def find_entry(member_id: int, entry_id: int) -> EntryRecord | None:
    row = await _entries(member_id).where(PointsEntry.id == entry_id).first()
    return _entry_record(row) if row is not None else None


# The building blocks, inside a write transaction --------------------------------

_LOCK_ACCOUNT = Prepared(
    lambda member_id, now: (
        PointsAccount.insert(PointsAccount(member=member_id, updated_at=now))
        .on_conflict(
            target=PointsAccount.member,
            action="DO UPDATE",
            values=[PointsAccount.updated_at],
        )
        .returning(PointsAccount.balance, PointsAccount.debt)
    )
)
_MERGED_INTO = Prepared(lambda member_id: Member.select(Member.merged_into).where(Member.id == member_id).first())
_SET_ACCOUNT = Prepared(
    lambda member_id, balance_delta, debt_delta, least_balance, least_debt: (
        PointsAccount.update(
            {
                PointsAccount.balance: PointsAccount.balance + balance_delta,
                PointsAccount.debt: PointsAccount.debt + debt_delta,
            }
        )
        .where(
            (PointsAccount.member == member_id)
            & (PointsAccount.balance >= least_balance)
            & (PointsAccount.debt >= least_debt)
        )
        .returning(PointsAccount.balance, PointsAccount.debt)
    )
)
_EXISTING_ONE = Prepared(
    lambda key: PointsEntry.select(
        PointsEntry.id,
        PointsEntry.kind,
        PointsEntry.delta,
        PointsEntry.debt_delta,
        PointsEntry.balance_after,
        PointsEntry.debt_after,
        PointsEntry.request_hash,
    ).where(PointsEntry.idempotency_key == key)
)


async def _lock_account(member_id: int, now: datetime) -> tuple[int, int]:
    """Touch the member's account row, creating it on first use, in one statement; answers (balance, debt)."""
    rows = await _LOCK_ACCOUNT.run(member_id, now)
    return rows[0]["balance"], rows[0]["debt"]


async def _lock_holder(member_id: int, now: datetime) -> tuple[int, int, int]:
    """Lock the account that holds the member's points now (a merged member's are the survivor's);
    answers (holder, balance, debt). With the lock held no merge of the holder can be under way, so
    a merge that committed meanwhile shows in `merged_into` and is followed."""
    for _ in range(32):
        balance, debt = await _lock_account(member_id, now)
        row = await _MERGED_INTO.run(member_id)
        if row is None or row["merged_into"] is None:
            return member_id, balance, debt
        member_id = row["merged_into"]
    raise RuntimeError(f"merge chain from member {member_id} does not end")


async def _set_account(member_id: int, *, balance_delta: int, debt_delta: int) -> tuple[int, int]:
    rows = await _SET_ACCOUNT.run(member_id, balance_delta, debt_delta, -balance_delta, -debt_delta)
    if not rows:  # the account row is locked by this transaction: only a bug gets here
        raise RuntimeError(f"points account of member {member_id} moved under its lock")
    return rows[0]["balance"], rows[0]["debt"]


async def _existing(keys: list[str], expected_hash: str) -> list[dict[str, Any]] | None:
    """The entries already posted under these keys, or None; a different request under a key is a conflict."""
    if len(keys) == 1:  # one key names at most one entry
        rows = await _EXISTING_ONE.run(keys[0])
    else:
        rows = (
            await PointsEntry.select(
                PointsEntry.id,
                PointsEntry.kind,
                PointsEntry.delta,
                PointsEntry.debt_delta,
                PointsEntry.balance_after,
                PointsEntry.debt_after,
                PointsEntry.request_hash,
            )
            .where(PointsEntry.idempotency_key.is_in(keys))
            .order_by(PointsEntry.id)
        )
    if not rows:
        return None
    if any(row["request_hash"] != expected_hash for row in rows):
        raise IdempotencyConflict(idempotency_key=keys[0])
    return rows


def _posted(row: dict[str, Any]) -> Posted:
    """What an earlier posting under the same key posted (a replay's answer)."""
    return Posted(
        entry_id=row["id"],
        kind=EntryKind(row["kind"]),
        delta=row["delta"],
        debt_delta=row["debt_delta"],
        balance=row["balance_after"],
        debt=row["debt_after"],
        replayed=True,
    )


async def _entry(
    member_id: int,
    kind: EntryKind,
    *,
    delta: int,
    debt_delta: int,
    after: tuple[int, int],
    store_id: int | None,
    source: tuple[str, str],
    key: str,
    hash_: str,
    reason: str = "",
    reverses: int | None = None,
    now: datetime,
) -> int:
    entry_id = await insert_row(
        PointsEntry,
        member=member_id,
        kind=kind,
        delta=delta,
        debt_delta=debt_delta,
        balance_after=after[0],
        debt_after=after[1],
        store=store_id,
        source_type=source[0],
        source_id=source[1],
        reverses=reverses,
        idempotency_key=key,
        request_hash=hash_,
        reason=reason,
        created_at=now,
    )
    if kind is EntryKind.adjust:  # HQ's hand on the ledger
        adjusted = {"delta": delta, "balance": after[0], "reason": reason, "entry_id": entry_id}
        await audit.record("points.adjust", "member", member_id, before={"balance": after[0] - delta}, after=adjusted)
    return entry_id


async def _take_from_lots(member_id: int, points: int, *, entry_id: int, prefer_lot: int | None = None) -> None:
    """Consume `points` from the member's live lots, soonest-expiring first (a preferred lot before all)."""
    lots = (
        await PointsLot.select(PointsLot.id, PointsLot.remaining)
        .where((PointsLot.member == member_id) & PointsLot.expired_at.is_null() & (PointsLot.remaining > 0))
        .order_by(PointsLot.expires_at)
        .order_by(PointsLot.id)
    )
    if prefer_lot is not None:
        lots.sort(key=lambda lot: lot["id"] != prefer_lot)
    left = points
    for lot in lots:
        if left == 0:
            break
        take = min(left, lot["remaining"])
        updated = (
            await PointsLot.update({PointsLot.remaining: PointsLot.remaining - take})
            .where((PointsLot.id == lot["id"]) & (PointsLot.remaining >= take))
            .returning(PointsLot.id)
        )
        if not updated:
            raise RuntimeError(f"lot {lot['id']} moved under the account lock")
        await insert_row(PointsLotUse, entry=entry_id, lot=lot["id"], points=take)
        left -= take
    if left:
        raise RuntimeError(f"member {member_id}'s lots hold {points - left} points, not {points}")


async def _credit(
    member_id: int,
    points: int,
    kind: EntryKind,
    *,
    store_id: int | None,
    source: tuple[str, str],
    key: str,
    hash_: str,
    now: datetime,
    expires_at: datetime | None = None,
    reason: str = "",
    reverses: int | None = None,
    restore_from: int | None = None,
) -> Posted:
    """Credit points as a new lot (or back into the lots an entry took), paying any debt off first."""
    member_id, _, _ = await _lock_holder(member_id, now)
    balance, debt = await _set_account(member_id, balance_delta=points, debt_delta=0)
    entry_id = await _entry(
        member_id,
        kind,
        delta=points,
        debt_delta=0,
        after=(balance, debt),
        store_id=store_id,
        source=source,
        key=key,
        hash_=hash_,
        reason=reason,
        reverses=reverses,
        now=now,
    )
    if restore_from is not None:
        await _restore_lots(member_id, points, taken_by=restore_from, entry_id=entry_id, now=now)
    else:
        await insert_row(
            PointsLot,
            member=member_id,
            entry=entry_id,
            store=store_id,
            points=points,
            remaining=points,
            expires_at=expires_at,
        )
    posted = Posted(entry_id, kind, points, 0, balance, debt)
    if debt:
        await _settle_debt(
            member_id, min(debt, balance), store_id=store_id, source=source, key=f"{key}:settle", hash_=hash_, now=now
        )
    return posted


async def _settle_debt(
    member_id: int, points: int, *, store_id: int | None, source: tuple[str, str], key: str, hash_: str, now: datetime
) -> None:
    if points <= 0:
        return
    after = await _set_account(member_id, balance_delta=-points, debt_delta=-points)
    entry_id = await _entry(
        member_id,
        EntryKind.debt_settle,
        delta=-points,
        debt_delta=-points,
        after=after,
        store_id=store_id,
        source=source,
        key=key,
        hash_=hash_,
        reason="points owed",
        now=now,
    )
    await _take_from_lots(member_id, points, entry_id=entry_id)


async def _restore_lots(member_id: int, points: int, *, taken_by: int, entry_id: int, now: datetime) -> None:
    """Give points back to the lots an entry took them from, keeping their stores and expiry dates.

    Each lot gets back at most what the entry took from it less what earlier reversals of
    the entry gave back already; every give-back is recorded as a use of the giving entry.
    """
    uses = (
        await PointsLotUse.select(
            PointsLotUse.lot,
            PointsLotUse.points,
            PointsLotUse.lot.expired_at,
            PointsLotUse.lot.expires_at,
            PointsLotUse.lot.store,
        )
        .where(PointsLotUse.entry == taken_by)
        .order_by(PointsLotUse.lot.expires_at, ascending=False)
    )
    given_back: dict[int, int] = {}
    for row in await PointsLotUse.select(PointsLotUse.lot, PointsLotUse.points).where(
        PointsLotUse.entry.reverses == taken_by
    ):
        given_back[row["lot"]] = given_back.get(row["lot"], 0) + row["points"]
    left = points
    for use in uses:
        give = min(left, use["points"] - given_back.get(use["lot"], 0))
        if give <= 0:
            continue
        restored = False
        if use["lot.expired_at"] is None:
            restored = bool(
                await PointsLot.update({PointsLot.remaining: PointsLot.remaining + give})
                .where((PointsLot.id == use["lot"]) & PointsLot.expired_at.is_null())
                .returning(PointsLot.id)
            )
        if not restored:  # the lot expired meanwhile: the points come back in a lot of their own, just as due
            await insert_row(
                PointsLot,
                member=member_id,
                entry=entry_id,
                store=use["lot.store"],
                points=give,
                remaining=give,
                expires_at=use["lot.expires_at"],
            )
        await insert_row(PointsLotUse, entry=entry_id, lot=use["lot"], points=give)
        left -= give
    if left:
        raise RuntimeError(f"entry {taken_by} took {points - left} points fewer than its reversal gives back")


async def _debit(
    member_id: int,
    points: int,
    kind: EntryKind,
    *,
    store_id: int | None,
    source: tuple[str, str],
    key: str,
    hash_: str,
    now: datetime,
    allow_debt: bool,
    reason: str = "",
    reverses: int | None = None,
    prefer_lot: int | None = None,
) -> Posted:
    """Take points; with `allow_debt` a shortfall becomes debt instead of a refusal."""
    member_id, balance, debt = await _lock_holder(member_id, now)
    if balance < points and not allow_debt:
        raise InsufficientPoints(details={"balance": balance, "requested": points}, member_id=member_id)
    take = min(points, balance)
    balance, debt = await _set_account(member_id, balance_delta=-take, debt_delta=points - take)
    entry_id = await _entry(
        member_id,
        kind,
        delta=-take,
        debt_delta=points - take,
        after=(balance, debt),
        store_id=store_id,
        source=source,
        key=key,
        hash_=hash_,
        reason=reason,
        reverses=reverses,
        now=now,
    )
    if take:
        await _take_from_lots(member_id, take, entry_id=entry_id, prefer_lot=prefer_lot)
    return Posted(entry_id, kind, -take, points - take, balance, debt)


async def _once(keys: list[str], hash_: str, operation) -> list[Posted]:
    """Run a posting once per key: a replay answers what the first run posted."""
    try:
        async with write_transaction():
            done = await _existing(keys, hash_)
            if done is not None:
                return [_posted(row) for row in done]
            result = await operation()
            return result if isinstance(result, list) else [result]
    except Exception as error:
        if not is_unique_violation(error):
            raise
    # A concurrent request with the same key won the race; its result is ours.
    done = await _existing(keys, hash_)
    if done is None:
        raise RuntimeError(f"unique violation without an entry under {keys}")
    return [_posted(row) for row in done]


# What other domains call ---------------------------------------------------------


async def earn(
    member_id: int,
    points: int,
    *,
    store_id: int | None,
    source_type: str,
    source_id: str,
    idempotency_key: str,
    now: datetime | None = None,
    enrolled_now: bool = False,
) -> Posted:
    """Credit points earned by a purchase, as a lot expiring by the policy.

    `enrolled_now`: the member was enrolled in the caller's write transaction, so nothing else can have
    touched their points yet (no account, no entry, no merge): the account opens holding these points.
    """
    if enrolled_now:
        return await _open_account(
            member_id,
            points,
            EntryKind.earn,
            store_id=store_id,
            source=(source_type, source_id),
            key=idempotency_key,
            now=now,
        )
    return await _credit_once(
        EntryKind.earn,
        member_id,
        points,
        store_id=store_id,
        source=(source_type, source_id),
        key=idempotency_key,
        now=now,
    )


def _credit_hash(
    kind: EntryKind, member_id: int, points: int, *, store_id: int | None, source: tuple[str, str], reason: str
) -> str:
    """What a credit under a key must match when asked for again, whichever way it was posted."""
    return request_hash(
        kind=kind.value, member=member_id, points=points, store=store_id, source=list(source), reason=reason
    )


async def _open_account(
    member_id: int,
    points: int,
    kind: EntryKind,
    *,
    store_id: int | None,
    source: tuple[str, str],
    key: str,
    now: datetime | None,
) -> Posted:
    if points <= 0:
        raise ValueError("credited points are positive")
    now = now or utcnow()
    hash_ = _credit_hash(kind, member_id, points, store_id=store_id, source=source, reason="")
    async with write_transaction():  # the caller's: the member's enrolment commits with these points or not at all
        await insert_row(PointsAccount, member=member_id, balance=points, debt=0, updated_at=now)
        entry_id = await _entry(
            member_id,
            kind,
            delta=points,
            debt_delta=0,
            after=(points, 0),
            store_id=store_id,
            source=source,
            key=key,
            hash_=hash_,
            now=now,
        )
        await insert_row(
            PointsLot,
            member=member_id,
            entry=entry_id,
            store=store_id,
            points=points,
            remaining=points,
            expires_at=configured_policy().expiry_for(now),
        )
    return Posted(entry_id, kind, points, 0, points, 0)


async def reward(
    member_id: int,
    points: int,
    *,
    store_id: int | None,
    source_type: str,
    source_id: str,
    idempotency_key: str,
    now: datetime | None = None,
) -> Posted:
    """Credit a reward (a referral, a campaign), as a lot expiring by the policy."""
    return await _credit_once(
        EntryKind.reward,
        member_id,
        points,
        store_id=store_id,
        source=(source_type, source_id),
        key=idempotency_key,
        now=now,
    )


async def _credit_once(
    kind: EntryKind,
    member_id: int,
    points: int,
    *,
    store_id: int | None,
    source: tuple[str, str],
    key: str,
    now: datetime | None,
    reason: str = "",
) -> Posted:
    if points <= 0:
        raise ValueError("credited points are positive")
    now = now or utcnow()
    hash_ = _credit_hash(kind, member_id, points, store_id=store_id, source=source, reason=reason)
    posted = await _once(
        [key],
        hash_,
        lambda: _credit(
            member_id,
            points,
            kind,
            store_id=store_id,
            source=source,
            key=key,
            hash_=hash_,
            now=now,
            expires_at=configured_policy().expiry_for(now),
            reason=reason,
        ),
    )
    return posted[0]


async def redeem(
    member_id: int,
    points: int,
    *,
    store_id: int | None,
    source_type: str,
    source_id: str,
    idempotency_key: str,
    now: datetime | None = None,
) -> Posted:
    """Spend points, soonest-expiring first; refused with points.insufficient when the balance is short."""
    if points <= 0:
        raise ValueError("redeemed points are positive")
    now = now or utcnow()
    source = (source_type, source_id)
    hash_ = request_hash(kind="redeem", member=member_id, points=points, store=store_id, source=list(source))
    posted = await _once(
        [idempotency_key],
        hash_,
        lambda: _debit(
            member_id,
            points,
            EntryKind.redeem,
            store_id=store_id,
            source=source,
            key=idempotency_key,
            hash_=hash_,
            now=now,
            allow_debt=False,
        ),
    )
    return posted[0]


async def adjust(
    member_id: int,
    delta: int,
    *,
    reason: str,
    idempotency_key: str,
    now: datetime | None = None,
) -> Posted:
    """HQ's correction: a credit as a new lot, or a debit that may not take the balance below zero."""
    if delta == 0:
        raise ValueError("an adjustment moves points")
    now = now or utcnow()
    source = ("adjustment", idempotency_key)
    if delta > 0:
        return await _credit_once(
            EntryKind.adjust,
            member_id,
            delta,
            store_id=None,
            source=source,
            key=idempotency_key,
            now=now,
            reason=reason,
        )
    hash_ = request_hash(kind="adjust", member=member_id, points=delta, store=None, source=list(source), reason=reason)
    posted = await _once(
        [idempotency_key],
        hash_,
        lambda: _debit(
            member_id,
            -delta,
            EntryKind.adjust,
            store_id=None,
            source=source,
            key=idempotency_key,
            hash_=hash_,
            now=now,
            allow_debt=False,
            reason=reason,
        ),
    )
    return posted[0]


async def reverse(
    source_type: str, source_id: str, *, refunded: int, of: int, idempotency_key: str, now: datetime | None = None
) -> list[Posted]:
    """Undo a source's points in proportion to how much of it has been refunded so far (`refunded` of `of`).

    Each earn or reward of the source is clawed back (debt for what the balance cannot
    cover) and each redemption is credited back into the lots it took, so that over any
    number of partial refunds the reversed points of an entry reach exactly
    floor(points * refunded / of), and all of them when everything is refunded.
    """
    if not 0 < refunded <= of:
        raise ValueError("refunded must be within (0, of]")
    now = now or utcnow()
    originals = (
        await PointsEntry.select(
            PointsEntry.id,
            PointsEntry.member,
            PointsEntry.kind,
            PointsEntry.delta,
            PointsEntry.store,
        )
        .where(
            (PointsEntry.source_type == source_type)
            & (PointsEntry.source_id == source_id)
            & PointsEntry.kind.is_in(list(REVERSIBLE))
        )
        .order_by(PointsEntry.id)
    )
    if not originals:
        return []
    hash_ = request_hash(kind="reverse", source=[source_type, source_id], refunded=refunded, of=of)
    keys = [f"{idempotency_key}:{original['id']}" for original in originals]

    async def operation() -> list[Posted]:
        posted = []
        for original, key in zip(originals, keys, strict=True):
            already = await PointsEntry.select(PointsEntry.delta, PointsEntry.debt_delta).where(
                PointsEntry.reverses == original["id"]
            )
            done = sum(abs(row["delta"]) + row["debt_delta"] for row in already)
            due = abs(original["delta"]) * refunded // of - done
            if due <= 0:
                continue
            common = dict(
                store_id=original["store"],
                source=(source_type, source_id),
                key=key,
                hash_=hash_,
                now=now,
                reverses=original["id"],
            )
            member_id = original["member"]  # credits and debits follow a merge to the survivor
            if original["kind"] == EntryKind.redeem:
                posted.append(
                    await _credit(member_id, due, EntryKind.reverse_redeem, restore_from=original["id"], **common)
                )
            else:
                lot = await PointsLot.select(PointsLot.id).where(PointsLot.entry == original["id"]).first()
                posted.append(
                    await _debit(
                        member_id,
                        due,
                        EntryKind.reverse_earn,
                        allow_debt=True,
                        prefer_lot=lot["id"] if lot else None,
                        **common,
                    )
                )
        return posted

    return await _once(keys, hash_, operation)


async def expire_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Expire the lots due by `now`, each exactly once, whichever worker gets there; answers how many."""
    now = now or utcnow()
    due = (
        await PointsLot.select(PointsLot.id, PointsLot.member)
        .where(PointsLot.expired_at.is_null() & (PointsLot.expires_at <= now))
        .order_by(PointsLot.expires_at)
        .limit(limit)
    )
    expired = 0
    for lot in due:
        try:
            async with write_transaction():
                await _lock_account(lot["member"], now)  # every change to a lot happens under this lock
                held = (
                    await PointsLot.select(PointsLot.member, PointsLot.remaining, PointsLot.store)
                    .where((PointsLot.id == lot["id"]) & PointsLot.expired_at.is_null())
                    .first()
                )
                if held is None or held["member"] != lot["member"]:
                    continue  # expired by another worker, or moved by a merge (the next pass takes it)
                claimed = (
                    await PointsLot.update({PointsLot.expired_at: now, PointsLot.remaining: 0})
                    .where(
                        (PointsLot.id == lot["id"])
                        & PointsLot.expired_at.is_null()
                        & (PointsLot.remaining == held["remaining"])
                    )
                    .returning(PointsLot.id)
                )
                if not claimed:
                    continue
                if held["remaining"]:
                    after = await _set_account(lot["member"], balance_delta=-held["remaining"], debt_delta=0)
                    entry_id = await _entry(
                        lot["member"],
                        EntryKind.expire,
                        delta=-held["remaining"],
                        debt_delta=0,
                        after=after,
                        store_id=held["store"],
                        source=("lot", str(lot["id"])),
                        key=f"expire:lot:{lot['id']}",
                        hash_="",
                        now=now,
                    )
                    await insert_row(PointsLotUse, entry=entry_id, lot=lot["id"], points=held["remaining"])
                expired += 1
        except Exception as error:
            if not is_unique_violation(error):
                raise
    if expired:
        logger.info("points lots expired", extra={"lots": expired})
    return expired


# How each kind of entry counts in a store's figures (a column of StoreLiability, and its sign); merges move points
# between members, which is no store's doing.
LIABILITY_COLUMNS = {
    EntryKind.earn: ("earned", 1),
    EntryKind.reward: ("earned", 1),
    EntryKind.redeem: ("redeemed", -1),
    EntryKind.reverse_redeem: ("redeemed", -1),
    EntryKind.expire: ("expired", -1),
    EntryKind.reverse_earn: ("reversed", -1),
    EntryKind.debt_settle: ("reversed", -1),
    EntryKind.adjust: ("adjusted", 1),
}


async def points_by_store(since: datetime, until: datetime) -> dict[int | None, StoreLiability]:
    """Each store's points earned, redeemed, expired, reversed and adjusted by entries recorded in [since, until)
    (HQ's own entries, with no store, are left out)."""
    with heavy_reads():
        sums = (
            await PointsEntry.select(PointsEntry.store, PointsEntry.kind, Sum(PointsEntry.delta).as_alias("total"))
            .where(
                (PointsEntry.created_at >= since) & (PointsEntry.created_at < until) & PointsEntry.store.is_not_null()
            )
            .group_by(PointsEntry.store, PointsEntry.kind)
        )
    rows: dict[int | None, StoreLiability] = {}
    _tally(sums, rows)
    return rows


def _tally(sums: list[dict[str, Any]], rows: dict[int | None, StoreLiability]) -> None:
    """Add the sums of entries by (store, kind) into each store's figures."""
    for item in sums:
        if (column := LIABILITY_COLUMNS.get(EntryKind(item["kind"]))) is not None:
            row = rows.setdefault(item["store"], StoreLiability(item["store"]))
            setattr(row, column[0], getattr(row, column[0]) + column[1] * int(item["total"] or 0))


async def liability_by_store() -> list[StoreLiability]:
    """Every store's liability (see StoreLiability), HQ's last."""
    with heavy_reads():
        sums = await PointsEntry.select(
            PointsEntry.store,
            PointsEntry.kind,
            Sum(PointsEntry.delta).as_alias("total"),
        ).group_by(PointsEntry.store, PointsEntry.kind)
        lots = (
            await PointsLot.select(PointsLot.store, Sum(PointsLot.remaining).as_alias("total"))
            .where(PointsLot.expired_at.is_null())
            .group_by(PointsLot.store)
        )
    rows: dict[int | None, StoreLiability] = {}
    _tally(sums, rows)
    for item in lots:
        rows.setdefault(item["store"], StoreLiability(item["store"])).outstanding += int(item["total"] or 0)
    return sorted(rows.values(), key=lambda r: (r.store_id is None, r.store_id or 0))


async def total_balances() -> int:
    with heavy_reads():
        row = await PointsAccount.select(Sum(PointsAccount.balance).as_alias("total")).first()
    return int(row["total"] or 0) if row else 0


async def merge_accounts(survivor_id: int, merged_id: int, *, now: datetime | None = None) -> dict[str, int]:
    """Move a merged member's points, lots (with their stores and expiry dates) and debt to the survivor.

    Runs inside the caller's write transaction (the member merge); answers what moved.
    """
    now = now or utcnow()
    for member_id in sorted((survivor_id, merged_id)):  # one lock order for every merge: no deadlocks
        await _lock_account(member_id, now)
    balance, debt = await balance_of(merged_id)
    lots = (
        await PointsLot.update({PointsLot.member: survivor_id})
        .where((PointsLot.member == merged_id) & PointsLot.expired_at.is_null())
        .returning(PointsLot.id)
    )
    if balance or debt:
        source, hash_ = ("member", str(merged_id)), ""
        after = await _set_account(merged_id, balance_delta=-balance, debt_delta=-debt)
        await _entry(
            merged_id,
            EntryKind.merge_out,
            delta=-balance,
            debt_delta=-debt,
            after=after,
            store_id=None,
            source=source,
            key=f"merge:{merged_id}:out",
            hash_=hash_,
            now=now,
        )
        after = await _set_account(survivor_id, balance_delta=balance, debt_delta=debt)
        await _entry(
            survivor_id,
            EntryKind.merge_in,
            delta=balance,
            debt_delta=debt,
            after=after,
            store_id=None,
            source=source,
            key=f"merge:{merged_id}:in",
            hash_=hash_,
            now=now,
        )
        if after[0] and after[1]:  # the survivor's points now pay what either of them owed
            await _settle_debt(
                survivor_id,
                min(after),
                store_id=None,
                source=source,
                key=f"merge:{merged_id}:settle",
                hash_=hash_,
                now=now,
            )
    return {"points": balance, "debt": debt, "lots": len(lots)}


async def reversed_under(idempotency_key: str) -> tuple[int, int]:
    """What a reversal posted under `idempotency_key` did: (earned points taken back, redeemed points given back)."""
    prefix = f"{idempotency_key}:"
    rows = await PointsEntry.select(PointsEntry.kind, PointsEntry.delta, PointsEntry.debt_delta).where(
        (PointsEntry.idempotency_key >= prefix) & (PointsEntry.idempotency_key < prefix[:-1] + ";")
    )
    taken = sum(-row["delta"] + row["debt_delta"] for row in rows if row["kind"] == EntryKind.reverse_earn)
    given = sum(row["delta"] for row in rows if row["kind"] == EntryKind.reverse_redeem)
    return taken, given
