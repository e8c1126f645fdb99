"""Coupons' part in what happens to members and orders, registered at import of `backend.coupons`: a welcome coupon
in the enrolment's transaction, the coupon of an order that closed unpaid or was refunded in full given back, and
a merged member's coupons moved to the survivor. (A referral's coupons are given by referrals, when it qualifies.)"""

from datetime import datetime

from backend.coupons import service
from backend.coupons.tables import CouponTrigger
from backend.members import enrolments, merges
from backend.orders.outcomes import ClosedOrder, RefundedOrder, on_closed, on_refunded


@enrolments.on_enrolled
async def welcome(enrolled: enrolments.Enrolled) -> None:
    for campaign in await service.running_campaigns(CouponTrigger.enrolment, enrolled.at):
        if await service.in_audience(campaign, enrolled.member_id, now=enrolled.at):
            await service.grant_valued(
                campaign, enrolled.member_id, grant_key=f"enrolment:{campaign.id}", now=enrolled.at
            )


@on_closed()
async def give_back_on_close(order: ClosedOrder) -> None:
    if order.coupon_id is not None:
        await service.give_back(order.coupon_id, order.id)


@on_refunded()
async def give_back_on_full_refund(order: RefundedOrder) -> None:
    """A partial refund keeps the coupon used; the refund that makes it whole gives it back."""
    if order.coupon_id is not None and order.fully and not order.late:
        await service.give_back(order.coupon_id, order.id)


@merges.on_merge(merges.COUPONS)
async def move_coupons(survivor_id: int, merged_id: int, now: datetime) -> None:
    await service.move_coupons(survivor_id, merged_id)
