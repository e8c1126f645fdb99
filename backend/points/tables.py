from enum import Enum

from piccolo.columns import BigInt, ForeignKey, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.members.tables import Member
from backend.stores.tables import Store


class EntryKind(str, Enum):
    earn = "earn"
    redeem = "redeem"
    expire = "expire"
    reverse_earn = "reverse_earn"
    reverse_redeem = "reverse_redeem"
    adjust = "adjust"
    merge_in = "merge_in"
    merge_out = "merge_out"
    reward = "reward"
    debt_settle = "debt_settle"  # a credit paying off points owed from an earlier clawback


class PointsAccount(Table, tablename="points_account"):
    """The balance snapshot; always equal to the sum of the member's entries."""

    member = ForeignKey(Member, null=False, unique=True, on_delete=OnDelete.restrict)
    balance = BigInt(default=0)
    debt = BigInt(default=0)  # points clawed back that the balance could not cover yet
    updated_at = Timestamptz(default=TimestamptzNow())

    balance_non_negative = Check(balance >= 0)
    debt_non_negative = Check(debt >= 0)


class PointsEntry(Table, tablename="points_entry"):
    """Append-only ledger; never updated or deleted."""

    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=20, choices=EntryKind)
    delta = BigInt()
    debt_delta = BigInt(default=0)
    balance_after = BigInt()
    debt_after = BigInt(default=0)
    store = ForeignKey(Store, null=True, on_delete=OnDelete.restrict)  # null: HQ
    source_type = Varchar(length=32, default="")
    source_id = Varchar(length=64, default="", index=True)
    reverses = ForeignKey("self", null=True, on_delete=OnDelete.no_action, index=True)
    idempotency_key = Varchar(length=96)
    request_hash = Varchar(length=64, default="")
    reason = Varchar(length=200, default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)  # the store report reads a day's points by it

    one_entry_per_key = Unique([idempotency_key])


class PointsLot(Table, tablename="points_lot"):
    """Points credited together, spent soonest-expiring first, expired once when due."""

    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    entry = ForeignKey(PointsEntry, null=False, on_delete=OnDelete.restrict, index=True)
    store = ForeignKey(Store, null=True, on_delete=OnDelete.restrict)
    points = BigInt()
    remaining = BigInt()
    expires_at = Timestamptz(index=True)
    expired_at = Timestamptz(null=True, default=None)

    remaining_in_range = Check((remaining >= 0) & (remaining <= points))


class PointsLotUse(Table, tablename="points_lot_use"):
    """How many points of which lot an entry (a redemption, a clawback) took."""

    entry = ForeignKey(PointsEntry, null=False, on_delete=OnDelete.restrict)
    lot = ForeignKey(PointsLot, null=False, on_delete=OnDelete.restrict, index=True)
    points = BigInt()

    one_use_per_lot = Unique([entry, lot])
    points_positive = Check(points > 0)
