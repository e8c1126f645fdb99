"""What a mall order does when its order's outcome is recorded, registered at import of `backend.mall`:
paid, it is the store's to prepare; closed unpaid, it gives its stock back; refunded, the refunded units go
back to stock while the goods never left the store. Also the mall order's fields a member's order list shows."""

from backend.mall import service
from backend.mall.tables import MallOrder
from backend.orders.outcomes import ClosedOrder, PaidOrder, RefundedOrder, on_closed, on_paid, on_refunded
from backend.orders.service import show_channel
from backend.orders.tables import OrderKind


@on_paid(OrderKind.mall)
async def to_prepare(order: PaidOrder) -> None:
    await service.order_paid(order.id)


@on_closed(OrderKind.mall)
async def give_the_stock_back(order: ClosedOrder) -> None:
    await service.order_closed(order.id)


@on_refunded(OrderKind.mall)
async def refunded_units_back(order: RefundedOrder) -> None:
    if not order.late:  # money that came after the order closed: its stock went back then
        await service.order_refunded(order.id, refund_id=order.refund_id, fully=order.fully)


show_channel(
    OrderKind.mall,
    MallOrder,
    order=MallOrder.order,
    status=MallOrder.status,
    pickup_code=MallOrder.pickup_code,
    pickup_store_id=MallOrder.store,
    fulfilment=MallOrder.fulfilment,
    address_name=MallOrder.address_name,
    address_phone=MallOrder.address_phone,
    address_text=MallOrder.address_text,
)
