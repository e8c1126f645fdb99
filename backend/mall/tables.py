from enum import Enum

from piccolo.columns import Boolean, DoublePrecision, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check
from piccolo.table import Table

from backend.orders.tables import Order, OrderLine
from backend.payments.tables import PaymentRefund
from backend.stores.tables import Staff, Store


class Fulfilment(str, Enum):
    pickup = "pickup"  # the shopper collects it at the store with a pickup code
    delivery = "delivery"  # the store brings it to the shopper's address


class MallStatus(str, Enum):
    pending_payment = "pending_payment"
    paid = "paid"  # for the store to prepare
    ready = "ready"  # prepared: a pickup order has its pickup code
    picked_up = "picked_up"
    delivered = "delivered"
    # Closed unpaid (stock back); or, paid, every unit asked back before it was handed over: refunded once the
    # money is back (stock back then), never prepared or handed over meanwhile
    cancelled = "cancelled"
    partially_refunded = "partially_refunded"
    refunded = "refunded"


HANDED_OVER = (MallStatus.picked_up, MallStatus.delivered)


class MallOrder(Table, tablename="mall_order"):
    """A mini-program mall order's own part: how it reaches the shopper and where it stands at the store.

    The money is the order's. The stock its lines took goes back once when it closes unpaid (the guarded
    update out of `pending_payment`), and a refund's units go back with the refund when the goods had not
    left the store (`MallRefundLine.restock`).
    """

    order = ForeignKey(Order, null=False, on_delete=OnDelete.restrict, unique=True)
    store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict, index=True)
    fulfilment = Varchar(length=16, choices=Fulfilment)
    status = Varchar(length=24, choices=MallStatus, default=MallStatus.pending_payment)
    address_name = Varchar(length=50, default="")
    address_phone = Varchar(length=20, default="")
    address_text = Varchar(length=200, default="")
    address_latitude = DoublePrecision(null=True, default=None)
    address_longitude = DoublePrecision(null=True, default=None)
    distance_m = Integer(null=True, default=None)  # from the store, for a delivery
    pickup_code = Varchar(length=16, null=True, default=None, unique=True)  # given when a pickup order is ready
    ready_at = Timestamptz(null=True, default=None)
    handed_over_at = Timestamptz(null=True, default=None)
    handed_over_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    mall_order_pickup_code_only_for_pickup = Check('"pickup_code" IS NULL OR "fulfilment" = \'pickup\'')
    mall_order_delivery_has_an_address = Check("\"fulfilment\" = 'pickup' OR \"address_text\" <> ''")


class MallRefundLine(Table, tablename="mall_refund_line"):
    """How many units of an order line a refund gives back; the units of a line's refunds that did not fail
    never pass its quantity (checked under the order's row, in the refund's transaction). `restock`: the goods
    had not left the store when the refund was asked for, so the units go back to stock when it succeeds."""

    refund = ForeignKey(PaymentRefund, null=False, on_delete=OnDelete.restrict, index=True)
    line = ForeignKey(OrderLine, null=False, on_delete=OnDelete.restrict, index=True)
    quantity = Integer()
    restock = Boolean(default=False)

    mall_refund_line_quantity_positive = Check(quantity >= 1)
