from enum import Enum

from piccolo.columns import BigInt, ForeignKey, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.orders.tables import Order
from backend.stores.tables import Staff


class TradeMethod(str, Enum):
    micropay = "micropay"  # the till scanned the shopper's payment code
    jsapi = "jsapi"  # wx.requestPayment in the mini-program


class TradeStatus(str, Enum):
    created = "created"  # the provider is being asked; no answer yet
    paying = "paying"  # the provider has it (or may have it): queried until it ends
    paid = "paid"
    failed = "failed"  # a definite refusal: nothing was taken
    closed = "closed"  # a mini-program trade closed unpaid (money that lands afterwards goes back)
    reversed = "reversed"  # a payment-code trade reversed unpaid


OPEN = (TradeStatus.created, TradeStatus.paying)
ENDED_UNPAID = (TradeStatus.failed, TradeStatus.closed, TradeStatus.reversed)


class PaymentTrade(Table, tablename="payment_trade"):
    """One attempt to take an order's money, by `out_trade_no` at the provider.

    A trade whose outcome is unknown keeps its next step here (`next_query_at`, and `expires_at`, after
    which it is reversed or closed), so that any worker's sweeper carries it on after a restart; so does
    a closed trade until the provider has confirmed the close.
    """

    order = ForeignKey(Order, null=False, on_delete=OnDelete.restrict, index=True)
    out_trade_no = Varchar(length=32, unique=True)
    method = Varchar(length=16, choices=TradeMethod)
    amount_fen = BigInt()
    status = Varchar(length=16, choices=TradeStatus, default=TradeStatus.created)
    transaction_id = Varchar(length=64, default="")
    payer_openid = Varchar(length=64, default="")
    failure = Varchar(length=32, default="")
    next_query_at = Timestamptz(null=True, default=None, index=True)
    expires_at = Timestamptz()
    created_at = Timestamptz()
    paid_at = Timestamptz(null=True, default=None)  # when the money arrived (also when it arrived too late)

    payment_trade_amount_positive = Check(amount_fen > 0)


class RefundStatus(str, Enum):
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"


class RefundKind(str, Enum):
    requested = "requested"  # staff (or a rule, such as a group that failed) gave (part of) a paid order back
    late_payment = "late_payment"  # money arrived for a trade that had already ended unpaid
    reversal = "reversal"  # a payment-code trade reversed at WeChat Pay after it was recorded paid


class PaymentRefund(Table, tablename="payment_refund"):
    """Money going back out of one trade, keyed by `out_refund_no` at the provider.

    A refund under way keeps its next query time here, so any worker's sweeper confirms it after a
    restart or a lost notification.
    """

    order = ForeignKey(Order, null=False, on_delete=OnDelete.restrict, index=True)
    trade = ForeignKey(PaymentTrade, null=False, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=16, choices=RefundKind, default=RefundKind.requested)
    staff = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    out_refund_no = Varchar(length=64, unique=True)
    idempotency_key = Varchar(length=64)
    request_hash = Varchar(length=64, default="")
    amount_fen = BigInt()
    reason = Varchar(length=80, default="")
    status = Varchar(length=16, choices=RefundStatus, default=RefundStatus.processing)
    refund_id = Varchar(length=64, default="")  # the provider's
    failure = Varchar(length=32, default="")  # ABNORMAL while processing: someone must finish it at WeChat Pay
    next_query_at = Timestamptz(null=True, default=None, index=True)
    created_at = Timestamptz(index=True)  # the store report reads a day's refunds by it
    settled_at = Timestamptz(null=True, default=None)

    payment_refund_one_per_key = Unique([order, idempotency_key])
    payment_refund_amount_positive = Check(amount_fen > 0)
