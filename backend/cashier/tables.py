from enum import Enum

from piccolo.columns import BigInt, Boolean, ForeignKey, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.members.tables import Member
from backend.stores.tables import Staff, Store


class OrderStatus(str, Enum):
    paying = "paying"
    paid = "paid"
    failed = "failed"
    cancelled = "cancelled"
    refunded = "refunded"
    partially_refunded = "partially_refunded"


class OrderChannel(str, Enum):
    till = "till"  # the cashier scanned the shopper's payment code
    store_code = "store_code"  # the shopper scanned the store's code and paid in the mini-program


class Order(Table, tablename="till_order"):
    """One checkout: its money, its member, and where its payment stands.

    A payment whose outcome is unknown keeps its deadlines here (`next_query_at`,
    `reverse_at`), so that any worker's sweeper can carry it on after a restart; so does
    a closed store-code order until WeChat Pay has confirmed the close.
    """

    store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict, index=True)
    staff = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    member = ForeignKey(Member, null=True, on_delete=OnDelete.restrict, index=True)
    channel = Varchar(length=16, choices=OrderChannel)
    amount_fen = BigInt()
    points_redeemed = BigInt(default=0)
    paid_fen = BigInt()  # what the payer is charged: the amount less the points discount
    status = Varchar(length=24, choices=OrderStatus, default=OrderStatus.paying)
    out_trade_no = Varchar(length=32, unique=True)
    idempotency_key = Varchar(length=64)
    request_hash = Varchar(length=64)
    transaction_id = Varchar(length=64, default="")
    payer_openid = Varchar(length=64, default="")
    scene = Varchar(length=32, default="")  # a share link's scene the shopper showed: a referral, if they are new
    member_enrolled = Boolean(default=False)
    points_earned = BigInt(default=0)
    failure = Varchar(length=32, default="")
    refunded_fen = BigInt(default=0)  # refunds accepted so far (under way or done): never above paid_fen
    next_query_at = Timestamptz(null=True, default=None, index=True)
    reverse_at = Timestamptz(null=True, default=None)  # the payment's deadline: reversed (till) or closed (store code)
    created_at = Timestamptz(default=TimestamptzNow())
    paid_at = Timestamptz(null=True, default=None)

    one_order_per_key = Unique([store, idempotency_key])
    amounts_make_sense = Check((amount_fen > 0) & (paid_fen > 0) & (points_redeemed >= 0))
    refunds_within_paid = Check((refunded_fen >= 0) & (refunded_fen <= paid_fen))


class RefundStatus(str, Enum):
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"


class RefundKind(str, Enum):
    requested = "requested"  # a cashier refunded (part of) a paid order
    late_payment = "late_payment"  # money arrived for an order that had already been closed


class Refund(Table, tablename="till_refund"):
    """Money going back for one order, keyed by `out_refund_no` at the provider.

    A refund under way keeps its next query time here, so any worker's sweeper can
    confirm it after a restart or a lost notification.
    """

    order = ForeignKey(Order, null=False, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=16, choices=RefundKind, default=RefundKind.requested)
    staff = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    out_refund_no = Varchar(length=64, unique=True)
    idempotency_key = Varchar(length=64)
    request_hash = Varchar(length=64, default="")
    amount_fen = BigInt()
    reason = Varchar(length=80, default="")
    status = Varchar(length=16, choices=RefundStatus, default=RefundStatus.processing)
    refund_id = Varchar(length=64, default="")
    points_reversed = BigInt(default=0)  # earned points taken back
    points_restored = BigInt(default=0)  # redeemed points given back
    failure = Varchar(length=32, default="")
    next_query_at = Timestamptz(null=True, default=None, index=True)
    created_at = Timestamptz(default=TimestamptzNow())
    settled_at = Timestamptz(null=True, default=None)

    one_refund_per_key = Unique([order, idempotency_key])
    refund_amount_positive = Check(amount_fen > 0)
