"""What a seat does when its order's outcome is recorded, registered at import of `backend.groupbuy`:
paid, it counts in its group (and the payment that fills the group makes it succeed); closed unpaid, it
gives its place, units and stock back; refunded in full, it reads refunded. Also what a member merge
moves, and the seat's fields a member's order list shows."""

from datetime import datetime

from backend.groupbuy import service
from backend.groupbuy.tables import Seat, SeatStatus
from backend.members import merges
from backend.orders.outcomes import ClosedOrder, PaidOrder, RefundedOrder, on_closed, on_paid, on_refunded
from backend.orders.service import show_channel
from backend.orders.tables import OrderKind


@on_paid(OrderKind.groupbuy)
async def count_the_seat(order: PaidOrder) -> None:
    await service.seat_paid(order.id, now=order.paid_at)


@on_closed(OrderKind.groupbuy)
async def give_the_seat_back(order: ClosedOrder) -> None:
    status = SeatStatus.cancelled if order.failure_reason == service.GIVEN_BACK else SeatStatus.expired
    await service.seat_ended(order.id, status=status)


@on_refunded(OrderKind.groupbuy)
async def mark_the_seat_refunded(order: RefundedOrder) -> None:
    if order.fully:
        await service.seat_refunded(order.id)


@merges.on_merge(merges.CHANNELS)
async def move_seats(survivor_id: int, merged_id: int, now: datetime) -> merges.Moved:
    return merges.Moved(seats=await service.move_seats(survivor_id, merged_id))


show_channel(
    OrderKind.groupbuy,
    Seat,
    order=Seat.order,
    status=Seat.status,
    group_id=Seat.group,
    pickup_code=Seat.pickup_code,
    pickup_store_id=Seat.pickup_store,
)
