from datetime import datetime

from backend.core.schema import Struct
from backend.orders.tables import OrderKind, OrderStatus


class LandingOut(Struct):
    text: str
    url: str | None


class OrderLineOut(Struct):
    id: int
    sku_id: int | None
    title: str
    quantity: int
    unit_price_fen: int
    amount_fen: int


class AddressOut(Struct):
    name: str
    phone: str
    text: str


class OrderOut(Struct):
    """An order of any channel. `status` is the channel's own word where it has one (a group-buy seat's),
    else `paymentStatus`; `payableFen` is what the payer is asked for, `paidFen` what was received."""

    id: int
    kind: OrderKind
    store_id: int
    store_name: str
    status: str
    payment_status: OrderStatus
    amount_fen: int
    discount_fen: int
    payable_fen: int
    paid_fen: int
    refunded_fen: int
    points_redeemed: int
    points_earned: int
    coupon_id: int | None
    coupon_discount_fen: int  # the coupon's part of discountFen
    tier_discount_fen: int  # the member's tier's part of discountFen (the rest is the points')
    member_price_saved_fen: int  # what the mall's member prices saved on the lines (their prices are those)
    points_multiplier_percent: int  # what pointsEarned was earned at: 100, or the tier's or paid plan's
    out_trade_no: str
    member_id: int | None
    member_enrolled: bool
    created_at: datetime
    paid_at: datetime | None
    pay_by: datetime
    failure_reason: str | None
    landing: LandingOut | None = None
    # A group-buy order's own fields
    group_id: int | None = None
    pickup_store_id: int | None = None
    pickup_code: str | None = None  # a seat's once its group has succeeded, a mall order's once it is ready
    # A mall order's own fields
    fulfilment: str | None = None  # pickup or delivery
    address: AddressOut | None = None  # a delivery's
    lines: list[OrderLineOut] | None = None  # an order's detail lists them; a page of orders does not


class OrdersPage(Struct):
    items: list[OrderOut]
    next_cursor: str | None
