"""Paid plans (心享会员): HQ's plans, bought by shoppers as orders of kind `membership`, and the monthly coupons.

A purchase's money moves through `payments/` like any order's (JSAPI, notify or query, closed when unpaid by its
deadline). Its payment starts the member's paid period or, while one is active, extends it from its end, once:
the order's own compare-and-set to paid makes the handler run once, however many notifications and queries race.

A shopper may cancel: an unpaid purchase is closed; a paid one is refunded in full within `REFUND_WITHIN` of its
payment when none of its benefits was used (no mall order at member prices since, none of its coupons used),
otherwise 409 `membership.not_refundable`. The refund takes its days off the period again (ending it when nothing
is left) and withdraws its coupons that are still unused.

The monthly coupons come from the period's deadline row (`PaidMembership.coupons_due_at`): the sweeper claims a due
row by a compare-and-set of its round count and issues that month's coupons in the same transaction, under keys
unique per member and month, so that several workers issue them exactly once.
"""

import calendar
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from backend.audit import service as audit
from backend.core.clock import BUSINESS_TIME, utcnow
from backend.core.db import Prepared, hold, insert_row, is_unique_violation, write_transaction
from backend.core.idempotency import request_hash
from backend.core.schema import given
from backend.coupons import service as coupons
from backend.coupons.tables import CouponTemplate
from backend.members import merges
from backend.members import service as members
from backend.membership import standing
from backend.membership.standing import PlanRecord
from backend.membership.tables import MembershipPlan, PaidMembership
from backend.orders import service as orders
from backend.orders.outcomes import ClosedOrder, PaidOrder, RefundedOrder, on_closed, on_paid, on_refunded
from backend.orders.service import LineItem, OrderRecord
from backend.orders.tables import Order, OrderKind, OrderStatus
from backend.payments import refunds
from backend.payments import service as payments
from backend.payments.errors import AlreadyPaid, RefundRejected
from backend.payments.numbers import new_out_trade_no
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import PaymentProvider
from backend.payments.refunds import SHOPPER_CANCEL_KEY
from backend.payments.tables import RefundStatus, TradeMethod
from backend.plans.errors import (
    IdempotencyConflict,
    NotRefundable,
    PlanCodeTaken,
    PlanInvalid,
    PlanNotFound,
    PurchaseNotFound,
    StoreNotFound,
    StoreRequired,
)
from backend.plans.schemas import PlanCreate, PurchaseCreate
from backend.plans.tables import MembershipPurchase, PurchaseStatus
from backend.stores import service as stores

logger = logging.getLogger(__name__)

REFUND_WITHIN = timedelta(days=7)
CANCELLED_BY_SHOPPER = "CANCELLED"
DUE_BATCH = 500


def purchase_key(order_id: int) -> str:
    """The prefix of the grant keys of a purchase's own coupons."""
    return f"plan:{order_id}:"


def next_coupon_day(after: datetime, coupon_day: int) -> datetime:
    """The start (business time) of the coupon day in the month after `after`'s: that day of the month, or the
    month's last day when it has fewer days."""
    local = after.astimezone(BUSINESS_TIME)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    day = min(coupon_day, calendar.monthrange(year, month)[1])
    return datetime.combine(datetime(year, month, day).date(), time(), tzinfo=BUSINESS_TIME).astimezone(UTC)


# Plans ----------------------------------------------------------------------------------------------


async def create_plan(data: PlanCreate, *, staff_id: int) -> PlanRecord:
    template_ids = sorted(set(data.monthly_coupon_template_ids or ()))
    if template_ids:
        known = {
            row["id"]
            for row in await CouponTemplate.select(CouponTemplate.id).where(CouponTemplate.id.is_in(template_ids))
        }
        if missing := [template_id for template_id in template_ids if template_id not in known]:
            raise PlanInvalid(details={"monthlyCouponTemplateIds": missing})
    try:
        async with write_transaction():
            plan_id = await insert_row(
                MembershipPlan,
                code=data.code,
                title=data.title,
                price_fen=data.price_fen,
                days=data.days,
                points_multiplier_percent=data.points_multiplier_percent,
                member_price=data.member_price,
                coupon_template_ids=",".join(str(template_id) for template_id in template_ids),
                on_sale=True,
                created_at=utcnow(),
                created_by=staff_id,
            )
            await audit.record("membership_plan.create", "membership_plan", plan_id, after=given(data))
    except Exception as error:
        if not is_unique_violation(error):
            raise
        raise PlanCodeTaken(details={"code": data.code}) from None
    standing.forget_plans()
    logger.info("membership plan created", extra={"plan_id": plan_id, "staff_id": staff_id})
    return (await standing.plans())[plan_id]


async def plans_on_sale() -> list[PlanRecord]:
    return sorted((plan for plan in (await standing.plans()).values() if plan.on_sale), key=lambda plan: plan.id)


async def all_plans() -> list[PlanRecord]:
    return sorted((await standing.plans()).values(), key=lambda plan: plan.id)


# Buying --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    order: int
    member: int
    plan: int
    status: PurchaseStatus
    days: int
    period_from: datetime | None
    period_until: datetime | None


_PURCHASE = Prepared(
    lambda order_id: (
        MembershipPurchase.select(
            MembershipPurchase.order,
            MembershipPurchase.member,
            MembershipPurchase.plan,
            MembershipPurchase.status,
            MembershipPurchase.days,
            MembershipPurchase.period_from,
            MembershipPurchase.period_until,
        )
        .where(MembershipPurchase.order == order_id)
        .first()
    )
)


async def find_purchase(order_id: int) -> PurchaseRecord | None:
    row = await _PURCHASE.run(order_id)
    return None if row is None else PurchaseRecord(**{**row, "status": PurchaseStatus(row["status"])})


@dataclass(frozen=True, slots=True)
class Bought:
    order: OrderRecord
    purchase: PurchaseRecord
    pay_params: dict[str, str] | None
    created: bool  # False: a replay of an earlier request with the same key


def _order_key(member_id: int, key: str) -> str:
    return "plan-" + hashlib.sha256(f"{member_id}:{key}".encode()).hexdigest()[:40]


async def buy(
    member_id: int,
    data: PurchaseCreate,
    *,
    pay_within: float,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> Bought:
    """A purchase of a plan on sale, paid by JSAPI: the order, its trade and the purchase in one transaction; the
    same key again answers the same purchase (a different request under it is 409)."""
    plan = (await standing.plans()).get(data.plan_id)
    if plan is None or not plan.on_sale:
        raise PlanNotFound(plan_id=data.plan_id)
    store_id = data.store_id
    if store_id is None:
        store_id = (await members.member_profile(member_id)).enrolled_store_id
        if store_id is None:
            raise StoreRequired()
    store = await stores.recent_store(store_id)
    if store is None or not store.active:
        raise StoreNotFound(store_id=store_id)
    key, digest = _order_key(member_id, data.idempotency_key), request_hash(plan=plan.id, store=store_id)
    replayed = await _replay(member_id, store_id, key, digest, description=plan.title, provider=provider, policy=policy)
    if replayed is not None:
        return replayed
    now = utcnow()
    openid = await members.payer_openid(member_id, policy.app_id)
    out_trade_no = new_out_trade_no(now)
    pay_by = now + timedelta(seconds=pay_within)
    try:
        async with write_transaction():
            order_id = await orders.place_order(
                kind=OrderKind.membership,
                store_id=store_id,
                member_id=member_id,
                amount_fen=plan.price_fen,
                out_trade_no=out_trade_no,
                pay_by=pay_by,
                idempotency_key=key,
                request_hash=digest,
                now=now,
                lines=(LineItem(title=plan.title, quantity=1, unit_price_fen=plan.price_fen),),
            )
            trade_id = await payments.open_trade(
                order_id,
                method=TradeMethod.jsapi,
                out_trade_no=out_trade_no,
                amount_fen=plan.price_fen,
                expires_at=pay_by,
                now=now,
                policy=policy,
            )
            await insert_row(
                MembershipPurchase,
                order=order_id,
                member=member_id,
                plan=plan.id,
                status=PurchaseStatus.pending_payment,
                days=plan.days,
                created_at=now,
            )
    except Exception as error:
        if not is_unique_violation(error):
            raise
        raced = await _replay(
            member_id, store_id, key, digest, description=plan.title, provider=provider, policy=policy
        )
        assert raced is not None
        return raced
    pay_params = await payments.create_jsapi(
        trade_id,
        out_trade_no=out_trade_no,
        amount_fen=plan.price_fen,
        payer_openid=openid,
        description=plan.title,
        expires_at=pay_by,
        provider=provider,
    )
    order = await orders.find_order(order_id)
    purchase = await find_purchase(order_id)
    assert order is not None and purchase is not None
    return Bought(order, purchase, pay_params, created=True)


async def _replay(
    member_id: int,
    store_id: int,
    key: str,
    digest: str,
    *,
    description: str,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> Bought | None:
    existing = await orders.find_by_key(store_id, key)
    if existing is None:
        return None
    if existing.request_hash != digest or existing.member != member_id:
        raise IdempotencyConflict(order_id=existing.id)
    pay_params = await payments.pay_params_while_paying(
        existing, description=description, provider=provider, policy=policy
    )
    purchase = await find_purchase(existing.id)
    assert purchase is not None
    return Bought(existing, purchase, pay_params, created=False)


async def member_purchase(order_id: int, member_id: int) -> tuple[OrderRecord, PurchaseRecord]:
    """One of the member's purchases; another member's does not exist."""
    purchase = await find_purchase(order_id)
    order = await orders.find_order(order_id) if purchase is not None else None
    if purchase is None or order is None or order.member != member_id:
        raise PurchaseNotFound(order_id=order_id)
    return order, purchase


async def member_purchases(member_id: int, *, limit: int, before_id: int | None) -> list[int]:
    """The member's purchases' order ids, newest first."""
    query = MembershipPurchase.select(MembershipPurchase.order).where(MembershipPurchase.member == member_id)
    if before_id is not None:
        query = query.where(MembershipPurchase.order < before_id)
    return [row["order"] for row in await query.order_by(MembershipPurchase.order, ascending=False).limit(limit)]


# What a purchase's outcome does, in its transaction ------------------------------------------------------


@on_paid(OrderKind.membership)
async def start_or_extend(order: PaidOrder) -> None:
    """The member's paid period starts now, or, while one is active, goes on for the plan's days from its end; the
    plan's coupons come with it."""
    purchase = await find_purchase(order.id)
    if purchase is None or order.member_id is None:
        return
    now, member_id = order.paid_at, order.member_id
    day, days = now.astimezone(BUSINESS_TIME).day, timedelta(days=purchase.days)
    fresh = {
        PaidMembership.plan: purchase.plan,
        PaidMembership.started_at: now,
        PaidMembership.active_until: now + days,
        PaidMembership.coupon_day: day,
        PaidMembership.coupons_due_at: next_coupon_day(now, day),
        PaidMembership.months_issued: 0,
    }
    start = now
    inserted = (
        await PaidMembership.insert(PaidMembership(member=member_id, **{c._meta.name: v for c, v in fresh.items()}))
        .on_conflict(action="DO NOTHING")
        .returning(PaidMembership.id)
    )
    if not inserted:  # the member has had a period: held, then extended while active or begun again
        period_id = (await PaidMembership.select(PaidMembership.id).where(PaidMembership.member == member_id).first())[
            "id"
        ]
        await hold(PaidMembership, period_id, PaidMembership.active_until)
        period = await PaidMembership.select().where(PaidMembership.id == period_id).first()
        changes = fresh
        if period["active_until"] > now:
            start = period["active_until"]
            changes = {PaidMembership.plan: purchase.plan, PaidMembership.active_until: start + days}
            if period["coupons_due_at"] is None:
                changes[PaidMembership.coupons_due_at] = next_coupon_day(now, period["coupon_day"])
        await PaidMembership.update(changes).where(PaidMembership.id == period_id)
    await MembershipPurchase.update(
        {
            MembershipPurchase.status: PurchaseStatus.active,
            MembershipPurchase.period_from: start,
            MembershipPurchase.period_until: start + days,
        }
    ).where(MembershipPurchase.order == order.id)
    plan = (await standing.plans()).get(purchase.plan)
    for template_id in plan.coupon_template_ids if plan is not None else ():
        await coupons.grant_benefit(template_id, member_id, grant_key=f"{purchase_key(order.id)}{template_id}", now=now)
    logger.info(
        "paid membership started" if start == now else "paid membership extended",
        extra={"order_id": order.id, "member_id": member_id, "until": (start + days).isoformat()},
    )


@on_closed(OrderKind.membership)
async def purchase_closed(order: ClosedOrder) -> None:
    await MembershipPurchase.update({MembershipPurchase.status: PurchaseStatus.cancelled}).where(
        (MembershipPurchase.order == order.id) & (MembershipPurchase.status == PurchaseStatus.pending_payment)
    )


@on_refunded(OrderKind.membership)
async def purchase_refunded(order: RefundedOrder) -> None:
    """Refunded in full: its days come off the member's period (which ends now when nothing is left of it), and its
    coupons still unused are withdrawn."""
    if not order.fully or order.late or order.member_id is None:
        return
    ended = (
        await MembershipPurchase.update({MembershipPurchase.status: PurchaseStatus.refunded})
        .where((MembershipPurchase.order == order.id) & (MembershipPurchase.status == PurchaseStatus.active))
        .returning(MembershipPurchase.days)
    )
    if not ended:
        return
    now = order.settled_at
    period = await PaidMembership.select().where(PaidMembership.member == order.member_id).first()
    if period is not None:
        await hold(PaidMembership, period["id"], PaidMembership.active_until)
        period = await PaidMembership.select().where(PaidMembership.id == period["id"]).first()
        until = period["active_until"] - timedelta(days=ended[0]["days"])
        if until <= now:
            changes = {PaidMembership.active_until: max(now, period["started_at"] + timedelta(microseconds=1))}
            changes[PaidMembership.coupons_due_at] = None
        else:
            changes = {PaidMembership.active_until: until}
        await PaidMembership.update(changes).where(PaidMembership.id == period["id"])
    withdrawn = await coupons.withdraw(order.member_id, grant_key_prefix=purchase_key(order.id), now=now)
    logger.info("paid membership refunded", extra={"order_id": order.id, "coupons_withdrawn": withdrawn})


# Cancelling ---------------------------------------------------------------------------------------------


async def _why_not_refundable(order: OrderRecord, now: datetime) -> str | None:
    assert order.paid_at is not None and order.member is not None
    if now - order.paid_at > REFUND_WITHIN:
        return "too_late"
    member_priced = await Order.exists().where(
        (Order.member == order.member)
        & (Order.kind == OrderKind.mall)
        & (Order.member_price_saved_fen > 0)
        & Order.status.is_in(list(orders.REFUNDABLE))
        & (Order.paid_at >= order.paid_at)
    )
    if member_priced:
        return "member_price_used"
    if await coupons.used_under(order.member, grant_key_prefix=purchase_key(order.id)):
        return "coupon_used"
    return None


async def cancel(order_id: int, *, member_id: int, provider: PaymentProvider, policy: PaymentPolicy) -> OrderRecord:
    """Unpaid: closed (at WeChat Pay first). Paid: refunded in full when it may be (see the module); the same again
    is the same."""
    order, _ = await member_purchase(order_id, member_id)
    if order.status is OrderStatus.paying:
        trade = await payments.trade_of(order_id)
        assert trade is not None
        try:
            await payments.give_back(trade.id, reason=CANCELLED_BY_SHOPPER, provider=provider, policy=policy)
        except AlreadyPaid:
            pass  # the money arrived meanwhile: refunded below, if it may be
        order, _ = await member_purchase(order_id, member_id)
    if order.status in orders.REFUNDABLE and order.refunded_fen < order.paid_fen:
        if (why := await _why_not_refundable(order, utcnow())) is not None:
            raise NotRefundable(details={"reason": why, "refundWithinDays": REFUND_WITHIN.days})
        failed = await refunds.failed_refunds(order_id, key_prefix=SHOPPER_CANCEL_KEY)
        refund, _ = await refunds.request_refund(
            order,
            amount_fen=order.paid_fen - order.refunded_fen,
            idempotency_key=f"{SHOPPER_CANCEL_KEY}:{failed + 1}",
            reason="会员退订",
            staff_id=None,
            provider=provider,
            policy=policy,
        )
        if refund.status is RefundStatus.failed:
            raise RefundRejected(order_id=order_id, refund_id=refund.id, failure=refund.failure)
    order, _ = await member_purchase(order_id, member_id)
    return order


# The monthly coupons: the sweeper's part ------------------------------------------------------------------


async def issue_due_coupons(*, now: datetime | None = None) -> int:
    """Each period whose coupon day has come: claimed by a compare-and-set of its round count, and that month's
    coupons issued in the same transaction (a period past its end is claimed and stops). Answers rounds issued."""
    now = now or utcnow()
    due = (
        await PaidMembership.select(PaidMembership.id)
        .where(PaidMembership.coupons_due_at <= now)
        .order_by(PaidMembership.coupons_due_at)
        .limit(DUE_BATCH)
    )
    issued = 0
    for row in due:
        async with write_transaction():
            issued += await _issue_round(row["id"], now=now)
    return issued


async def _issue_round(period_id: int, *, now: datetime) -> int:
    period = await PaidMembership.select().where(PaidMembership.id == period_id).first()
    if period is None or period["coupons_due_at"] is None or period["coupons_due_at"] > now:
        return 0
    due_at = period["coupons_due_at"]
    following = next_coupon_day(due_at, period["coupon_day"])
    live = due_at < period["active_until"]
    claimed = (
        await PaidMembership.update(
            {
                PaidMembership.coupons_due_at: following if live and following < period["active_until"] else None,
                PaidMembership.months_issued: PaidMembership.months_issued + (1 if live else 0),
            }
        )
        .where((PaidMembership.id == period_id) & (PaidMembership.months_issued == period["months_issued"]))
        .where(PaidMembership.coupons_due_at.is_not_null())
        .returning(PaidMembership.id)
    )
    if not claimed or not live:
        return 0
    plan = (await standing.plans()).get(period["plan"])
    month = due_at.astimezone(BUSINESS_TIME).strftime("%Y%m")
    for template_id in plan.coupon_template_ids if plan is not None else ():
        await coupons.grant_benefit(
            template_id, period["member"], grant_key=f"plan-month:{month}:{template_id}", now=now
        )
    logger.info("monthly plan coupons issued", extra={"member_id": period["member"], "month": month})
    return 1


# Merges ------------------------------------------------------------------------------------------------


@merges.on_merge(merges.CHANNELS)
async def move_purchases(survivor_id: int, merged_id: int, now: datetime) -> None:
    await MembershipPurchase.update({MembershipPurchase.member: survivor_id}).where(
        MembershipPurchase.member == merged_id
    )
