import operator
from datetime import date, datetime
from typing import Any

import msgspec
from msgspec.structs import astuple

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


class Figures(msgspec.Struct, rename="camel"):
    """A store's day, or sums of them: orders and sales in all and by kind, refunds, new members by the channel they
    enrolled through, points earned, redeemed and expired, coupons used and what they took off, group-buy units.
    Positional (unlike the other bodies), so that the report builds tens of thousands of them straight from their
    rows."""

    orders: int = 0
    sales_fen: int = 0
    till_orders: int = 0
    till_sales_fen: int = 0
    store_code_orders: int = 0
    store_code_sales_fen: int = 0
    groupbuy_orders: int = 0
    groupbuy_sales_fen: int = 0
    mall_orders: int = 0
    mall_sales_fen: int = 0
    membership_orders: int = 0
    membership_sales_fen: int = 0
    refunds: int = 0
    refunds_fen: int = 0
    new_members_cashier: int = 0
    new_members_miniprogram: int = 0
    new_members_referral: int = 0
    points_earned: int = 0
    points_redeemed: int = 0
    points_expired: int = 0
    coupons_used: int = 0
    coupon_discount_fen: int = 0
    groupbuy_units: int = 0

    def plus(self, other: "Figures") -> "Figures":
        return Figures(*map(operator.add, astuple(self), astuple(other)))

    def totalled(self) -> "Figures":
        """With `orders` and `salesFen` summed from the kinds'."""
        self.orders = sum(getattr(self, f"{kind}_orders") for kind in KINDS)
        self.sales_fen = sum(getattr(self, f"{kind}_sales_fen") for kind in KINDS)
        return self


KINDS = ("till", "store_code", "groupbuy", "mall", "membership")  # the order kinds, as Figures' columns name them
COLUMNS = Figures.__struct_fields__[2:]  # StoreDay's own: the sums are worked out


class StoreDayOut(Struct):
    day: date
    store_id: int
    store_code: str
    store_name: str
    figures: Figures


class StoreTotalOut(Struct):
    store_id: int
    store_code: str
    store_name: str
    figures: Figures


class DayTotalOut(Struct):
    day: date
    figures: Figures


class StoreReportOut(Struct):
    from_: date = msgspec.field(name="from")
    to: date
    written_days: int  # of its days, those read from the day's figures written when it ended
    rows: list[StoreDayOut]  # the store-days with anything in them, by day then store
    by_store: list[StoreTotalOut]  # each store over the window, most sales first
    by_day: list[DayTotalOut]  # the chain (or the manager's stores) per day, every day of the window
    totals: Figures
