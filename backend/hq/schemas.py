from datetime import date, datetime
from typing import Any

import msgspec

from backend.core.schema import Struct
from backend.membership.schemas import MembershipOut, TagOut
from backend.orders.schemas import OrderOut
from backend.referrals.schemas import MyReferral


class MemberRowOut(Struct):
    id: int
    nickname: str
    status: str  # active | merged
    phone_masked: str | None
    enrolled_store_id: int | None
    enrolled_via: str
    tier_code: str | None
    growth: int
    created_at: datetime


class MembersPage(Struct):
    items: list[MemberRowOut]
    next_cursor: str | None
    matched_by: str  # how `q` was read: phone | member_code | id | nickname | all


class IdentityOut(Struct):
    kind: str
    masked: str
    created_at: datetime


class LotOut(Struct):
    id: int
    store_id: int | None
    points: int
    remaining: int
    expires_at: datetime


class MemberPointsOut(Struct):
    balance: int
    debt: int
    lots: list[LotOut]


class MergeOut(Struct):
    id: int
    survivor_id: int
    merged_id: int
    reason: str
    staff_id: int | None
    points_moved: int
    orders_moved: int
    created_at: datetime


class MemberPageOut(Struct):
    member: MemberRowOut
    identities: list[IdentityOut]
    points: MemberPointsOut
    membership: MembershipOut
    tags: list[TagOut]
    recent_orders: list[OrderOut]
    merges: list[MergeOut]
    referred_by: int | None
    brought_in: list[MyReferral]


class AuditEntryOut(Struct):
    id: int
    at: datetime
    actor_id: int | None
    actor_username: str
    actor_role: str
    client: str
    request_id: str
    action: str
    entity: str
    entity_id: str
    store_id: int | None
    changes: dict[str, list[Any]]  # {field: [before, after]}


class AuditPage(Struct):
    items: list[AuditEntryOut]
    next_cursor: str | None


class KindFiguresOut(Struct):
    orders: int
    sales_fen: int


class NewMembersOut(Struct):
    cashier: int
    miniprogram: int
    referral: int


class FiguresOut(Struct):
    orders: int
    sales_fen: int
    by_kind: dict[str, KindFiguresOut]  # till, store_code, groupbuy, mall, membership
    refunds: int
    refunds_fen: int
    new_members: NewMembersOut  # by the channel they enrolled through
    points_earned: int
    points_redeemed: int
    points_expired: int
    coupons_used: int
    coupon_discount_fen: int
    groupbuy_units: int


class StoreDayOut(Struct):
    day: date
    store_id: int
    store_code: str
    store_name: str
    figures: FiguresOut


class StoreTotalOut(Struct):
    store_id: int
    store_code: str
    store_name: str
    figures: FiguresOut


class DayTotalOut(Struct):
    day: date
    figures: FiguresOut


class StoreReportOut(Struct):
    from_: date = msgspec.field(name="from")
    to: date
    written_days: int  # of its days, those read from the day's figures written when it ended
    rows: list[StoreDayOut]  # the store-days with anything in them, by day then store
    by_store: list[StoreTotalOut]  # each store over the window, most sales first
    by_day: list[DayTotalOut]  # the chain (or the manager's stores) per day, every day of the window
    totals: FiguresOut
