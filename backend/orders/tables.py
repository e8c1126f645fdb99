from enum import Enum

from piccolo.columns import BigInt, Boolean, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.members.tables import Member
from backend.stores.tables import Staff, Store


class OrderKind(str, Enum):
    till = "till"  # the cashier scanned the shopper's payment code
    store_code = "store_code"  # the shopper scanned the store's code and paid in the mini-program
    groupbuy = "groupbuy"  # a seat in a group-buy group
    mall = "mall"  # a mini-program mall order
    membership = "membership"  # a paid membership plan


class OrderStatus(str, Enum):
    """Where the order's money stands; a channel keeps its own words beside it (a seat's, a delivery's)."""

    paying = "paying"  # asked for, not received yet
    paid = "paid"
    failed = "failed"  # the payment was refused: nothing was taken
    cancelled = "cancelled"  # closed or reversed unpaid
    partially_refunded = "partially_refunded"
    refunded = "refunded"


class Order(Table, tablename="sale_order"):
    """One sale, whatever its channel: what it costs, who pays, what was received and given back.

    `payable_fen` is what the payer is asked for (the amount less its discounts); `paid_fen` what was
    received (0 until paid); `refunded_fen` the refunds accepted so far, under way or done, raised by a
    guarded update so that concurrent refunds never add up to more than was received.
    """

    kind = Varchar(length=16, choices=OrderKind)
    store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict, index=True)
    staff = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    member = ForeignKey(Member, null=True, on_delete=OnDelete.restrict, index=True)
    status = Varchar(length=24, choices=OrderStatus, default=OrderStatus.paying)
    amount_fen = BigInt()
    discount_fen = BigInt(default=0)  # the tier's discount, the coupon and points redeemed, taken off the amount
    payable_fen = BigInt()
    paid_fen = BigInt(default=0)
    refunded_fen = BigInt(default=0)
    points_redeemed = BigInt(default=0)
    points_earned = BigInt(default=0)
    coupon_id = Integer(null=True, default=None)  # the coupon the order uses (coupons keep which order uses each)
    coupon_discount_fen = BigInt(default=0)  # the coupon's part of discount_fen
    member_enrolled = Boolean(default=False)  # this payment made the payer a member
    # What the member's standing gave the order: the tier's discount (a part of discount_fen, at the till and the
    # store code), what the mall's member prices saved on its lines (their prices are those), and the points
    # multiplier its points were earned at (the higher of tier and paid plan; 100 until then, or without one).
    tier_discount_fen = BigInt(default=0)
    member_price_saved_fen = BigInt(default=0)
    points_multiplier_percent = Integer(default=100)
    scene = Varchar(length=32, default="")  # a share link's scene the payer came by: a referral if they are new
    out_trade_no = Varchar(length=32)  # of the payment trade asking for the money now
    pay_by = Timestamptz()  # paid by then or not at all: reversed, closed or given back
    idempotency_key = Varchar(length=64)
    request_hash = Varchar(length=64, default="")
    failure_reason = Varchar(length=32, default="")
    created_at = Timestamptz()
    paid_at = Timestamptz(null=True, default=None, index=True)  # the store report reads a day's sales by it

    sale_order_one_per_key = Unique([store, idempotency_key])
    sale_order_amounts_add_up = Check(
        (amount_fen > 0) & (discount_fen >= 0) & (payable_fen > 0) & (points_redeemed >= 0) & (points_earned >= 0)
    )
    sale_order_coupon_within_discount = Check(
        '"coupon_discount_fen" >= 0 AND "coupon_discount_fen" <= "discount_fen" '
        'AND ("coupon_id" IS NOT NULL OR "coupon_discount_fen" = 0)'
    )
    sale_order_member_benefits = Check(
        '"tier_discount_fen" >= 0 AND "tier_discount_fen" + "coupon_discount_fen" <= "discount_fen" '
        'AND "member_price_saved_fen" >= 0 AND "points_multiplier_percent" >= 100'
    )
    sale_order_payable_is_amount_less_discount = Check('"payable_fen" = "amount_fen" - "discount_fen"')
    sale_order_refunds_within_paid = Check(
        (paid_fen >= 0) & (paid_fen <= payable_fen) & (refunded_fen >= 0) & (refunded_fen <= paid_fen)
    )


class OrderLine(Table, tablename="sale_order_line"):
    """What an order is for: a product (or a group-buy seat) at its unit price."""

    order = ForeignKey(Order, null=False, on_delete=OnDelete.cascade, index=True)
    sku_id = Integer(null=True, default=None)
    title = Varchar(length=100)
    quantity = Integer()
    unit_price_fen = BigInt()
    amount_fen = BigInt()

    sale_order_line_amounts_add_up = Check('("quantity" >= 1 AND "amount_fen" = "unit_price_fen" * "quantity")')
