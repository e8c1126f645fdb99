"""Referrals' part in every order's outcome, registered at import of `backend.referrals`: the referee's first
paid order of any kind qualifies their referral (a scene it came with binds one first, for a payer it
enrolled), and a refund of that order undoes the rewards. Also what a member merge moves."""

from datetime import datetime

from backend.members import merges
from backend.orders.outcomes import PaidOrder, RefundedOrder, on_paid, on_refunded
from backend.referrals import service


@on_paid()
async def qualify_on_first_paid_order(order: PaidOrder) -> None:
    if order.member_id is None:
        return
    if order.scene:
        await service.attribute(order.member_id, order.scene, is_new=order.member_enrolled, now=order.paid_at)
    if order.scene or not order.member_enrolled:  # a payer enrolled just now has no referral without a scene
        await service.on_paid_order(order.member_id, order.id, now=order.paid_at)


@on_refunded()
async def undo_on_refund(order: RefundedOrder) -> None:
    if not order.late:
        await service.on_order_refunded(order.id, now=order.settled_at)


@merges.on_merge(merges.REFERRALS)
async def move_edges(survivor_id: int, merged_id: int, now: datetime) -> None:
    await service.move_edges(survivor_id, merged_id, now=now)
