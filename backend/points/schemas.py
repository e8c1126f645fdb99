from datetime import datetime
from typing import Annotated

import msgspec

from backend.core.idempotency import IdempotencyKey
from backend.core.schema import Struct
from backend.points.tables import EntryKind


class ExpiringOut(Struct):
    points: int
    expires_at: datetime


class PointsOut(Struct):
    balance: int
    debt: int
    expiring: list[ExpiringOut]


class EntryOut(Struct):
    id: int
    delta: int
    kind: EntryKind
    store_id: int | None
    created_at: datetime
    balance_after: int
    debt_delta: int
    source_type: str
    source_id: str
    reason: str


class EntriesPage(Struct):
    items: list[EntryOut]
    next_cursor: str | None


class PointsAdjustmentCreate(Struct):
    delta: Annotated[int, msgspec.Meta(ge=-10_000_000, le=10_000_000)]
    reason: Annotated[str, msgspec.Meta(min_length=2, max_length=200)]
    idempotency_key: IdempotencyKey | None = None  # or the Idempotency-Key header


class PostedOut(Struct):
    entry_id: int
    kind: EntryKind
    delta: int
    debt_delta: int
    balance: int
    debt: int


class StoreLiabilityOut(Struct):
    store_id: int | None
    store_code: str | None
    earned: int
    redeemed: int
    expired: int
    reversed: int
    adjusted: int
    outstanding: int


class PointsLiabilityOut(Struct):
    stores: list[StoreLiabilityOut]
    total_outstanding: int
    total_balances: int
