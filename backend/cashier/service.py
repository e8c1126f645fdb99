"""Checkout: at the till (one order per idempotency key, one payment call per order) and by the store's code
in the mini-program. A state machine that always ends paid, failed or cancelled, and a member with points at
the end of every paid checkout.

    paying -> paid        the provider says SUCCESS (at once, at any query, or in a verified notification)
    paying -> failed      a definite failure; reserved points are released
    paying -> cancelled   still unpaid at the deadline: reversed (till) or closed (store code), only after a
                          query said not paid; money that arrives after that is refunded automatically
"""

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backend.cashier import refunds
from backend.cashier.codes import PaymentCodeKind, classify_payment_code, new_out_trade_no
from backend.cashier.errors import (
    AmountOutOfRange,
    IdempotencyConflict,
    InvalidPaymentCode,
    OrderNotCancellable,
    OrderNotFound,
    PayerUnknown,
    PaymentNotStarted,
    PointsNeedMember,
    PointsNotExact,
    ProviderUnreachable,
    ProviderUnsupported,
    StoreNotFound,
)
from backend.cashier.tables import Order, OrderChannel, OrderStatus
from backend.core.clock import utcnow
from backend.core.db import Prepared, insert_row, is_unique_violation, write_transaction
from backend.core.idempotency import request_hash
from backend.members import service as members
from backend.members.tables import IdentityKind, MemberIdentity
from backend.members.wechat import WeChatSession
from backend.payments.calls import close_or_find_payment
from backend.payments.notices import check_transaction_notice
from backend.payments.provider import (
    NO_ANSWER,
    NOT_DONE,
    Payment,
    PaymentProvider,
    PayOutcome,
    TradeState,
    TransactionNotice,
)
from backend.points import service as points
from backend.points.service import PointsPolicy
from backend.referrals import service as referrals
from backend.settings import Settings
from backend.stores import service as stores
from backend.stores.tables import Store

logger = logging.getLogger(__name__)

SOURCE = "till_order"
MAX_RECALLS = 5
SETTLE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class CheckoutPolicy:
    max_amount_fen: int = 5_000_000
    redeem_points_per_yuan: int = 100
    query_interval: float = 5.0
    payment_timeout: float = 30.0
    inline_wait: float = 8.0
    store_payment_close_after: float = 900.0  # an unpaid store-code order is closed after this
    store_payment_query_interval: float = 60.0  # ...and asked about this often, in case a notification is lost
    refund_query_interval: float = 60.0
    app_id: str = ""
    points: PointsPolicy = PointsPolicy()

    @classmethod
    def from_settings(cls, settings: Settings) -> "CheckoutPolicy":
        return cls(
            max_amount_fen=settings.checkout_max_amount_fen,
            redeem_points_per_yuan=settings.redeem_points_per_yuan,
            query_interval=settings.micropay_query_interval_seconds,
            payment_timeout=settings.micropay_timeout_seconds,
            inline_wait=settings.micropay_inline_wait_seconds,
            store_payment_close_after=settings.store_payment_close_after_seconds,
            store_payment_query_interval=settings.store_payment_query_interval_seconds,
            refund_query_interval=settings.refund_query_interval_seconds,
            app_id=settings.wechat_app_id,
            points=PointsPolicy(expiry_months=settings.points_expiry_months, timezone=settings.points_timezone),
        )


_ORDER = Prepared(lambda order_id: Order.select().where(Order.id == order_id).first())
_ORDER_BY_KEY = Prepared(
    lambda store_id, key: Order.select().where((Order.store == store_id) & (Order.idempotency_key == key)).first()
)
_CLAIM_PAID = Prepared(
    lambda order_id, now, transaction_id, openid: (
        Order.update(
            {
                Order.status: OrderStatus.paid,
                Order.paid_at: now,
                Order.transaction_id: transaction_id,
                Order.payer_openid: openid,
                Order.next_query_at: None,
            }
        )
        .where((Order.id == order_id) & (Order.status == OrderStatus.paying))
        .returning(Order.store, Order.paid_fen, Order.member, Order.scene)
    )
)
_PAID_BY = Prepared(
    lambda order_id, member_id, enrolled, earned: (
        Order.update(
            {
                Order.member: member_id,
                Order.member_enrolled: enrolled,
                Order.points_earned: earned,
            }
        )
        .where((Order.id == order_id) & Order.member.is_null())
        .returning(*Order.all_columns())
    )
)
_PAID_POINTS = Prepared(
    lambda order_id, earned: (
        Order.update({Order.points_earned: earned}).where(Order.id == order_id).returning(*Order.all_columns())
    )
)


async def get_order(order_id: int) -> dict[str, Any]:
    order = await _ORDER.run(order_id)
    if order is None:
        raise OrderNotFound(order_id=order_id)
    return order


async def find_order(store_id: int, idempotency_key: str) -> dict[str, Any] | None:
    return await _ORDER_BY_KEY.run(store_id, idempotency_key)


def check_replay(order: dict[str, Any], **request: Any) -> None:
    if order["request_hash"] != request_hash(**request):
        raise IdempotencyConflict(order_id=order["id"])


async def replayed_order(
    store_id: int, idempotency_key: str, request: dict[str, Any], policy: CheckoutPolicy
) -> dict[str, Any] | None:
    """The order an earlier request with this key made (once it is settled, within the till's wait), or None."""
    existing = await find_order(store_id, idempotency_key)
    if existing is None:
        return None
    check_replay(existing, **request)
    return await await_outcome(existing["id"], policy)


def validate_checkout(
    *, amount_fen: int, auth_code: str, member_id: int | None, points_to_redeem: int, policy: CheckoutPolicy
) -> int:
    """Everything that can be refused before a provider call; answers the fen the points take off."""
    kind = classify_payment_code(auth_code)
    if kind is None:
        raise InvalidPaymentCode()
    if kind is PaymentCodeKind.alipay:
        raise ProviderUnsupported()
    return points_discount(amount_fen=amount_fen, member_id=member_id, points_to_redeem=points_to_redeem, policy=policy)


def points_discount(*, amount_fen: int, member_id: int | None, points_to_redeem: int, policy: CheckoutPolicy) -> int:
    if amount_fen > policy.max_amount_fen:
        raise AmountOutOfRange(details={"maxAmountFen": policy.max_amount_fen})
    if not points_to_redeem:
        return 0
    if member_id is None:
        raise PointsNeedMember()
    discount, remainder = divmod(points_to_redeem * 100, policy.redeem_points_per_yuan)
    if remainder or discount >= amount_fen:
        raise PointsNotExact(details={"pointsPerYuan": policy.redeem_points_per_yuan})
    return discount


async def checkout(
    *,
    store_id: int,
    staff_id: int,
    amount_fen: int,
    auth_code: str,
    idempotency_key: str,
    request: dict[str, Any],
    member_id: int | None,
    points_to_redeem: int,
    provider: PaymentProvider,
    policy: CheckoutPolicy,
    scene: str = "",
) -> tuple[dict[str, Any], bool]:
    """Take a payment-code payment; answers the order once it is settled or the inline wait is over, and
    whether this request created it (a concurrent duplicate gets the first request's order)."""
    discount = validate_checkout(
        amount_fen=amount_fen,
        auth_code=auth_code,
        member_id=member_id,
        points_to_redeem=points_to_redeem,
        policy=policy,
    )
    now = utcnow()
    out_trade_no = new_out_trade_no(now)
    try:
        async with write_transaction():
            order_id = await insert_row(
                Order,
                store=store_id,
                staff=staff_id,
                member=member_id,
                channel=OrderChannel.till,
                amount_fen=amount_fen,
                points_redeemed=points_to_redeem,
                paid_fen=amount_fen - discount,
                out_trade_no=out_trade_no,
                idempotency_key=idempotency_key,
                request_hash=request_hash(**request),
                scene=scene,
                next_query_at=now + timedelta(seconds=policy.payment_timeout + policy.query_interval),
                reverse_at=now + timedelta(seconds=policy.payment_timeout),
                created_at=now,
            )
            if points_to_redeem:  # reserved with the order; released if the payment does not happen
                await points.redeem(
                    member_id,
                    points_to_redeem,
                    store_id=store_id,
                    source_type=SOURCE,
                    source_id=str(order_id),
                    idempotency_key=f"{SOURCE}:{order_id}:redeem",
                    now=now,
                )
    except Exception as error:
        if not is_unique_violation(error):
            raise
        # The same checkout again (a double scan, a retry): the first request's order, and no second payment.
        existing = await find_order(store_id, idempotency_key)
        check_replay(existing, **request)
        return await await_outcome(existing["id"], policy), False
    payment = await _micropay(
        provider,
        out_trade_no=out_trade_no,
        amount_fen=amount_fen - discount,
        auth_code=auth_code,
        store_ref=str(store_id),
    )
    settled = await _apply_payment(order_id, payment, provider=provider, policy=policy)
    if settled is not None:
        return settled, True
    return await _pursue_inline(order_id, provider=provider, policy=policy), True


async def _micropay(provider: PaymentProvider, **call: Any) -> Payment:
    try:
        return await provider.micropay(description="checkout", **call)
    except NO_ANSWER as error:  # the call may or may not have reached WeChat Pay
        logger.warning("micropay call failed", extra={"error": type(error).__name__})
        return Payment(PayOutcome.unknown, error_code="NETWORK")


async def _apply_payment(
    order_id: int, payment: Payment, *, provider: PaymentProvider, policy: CheckoutPolicy
) -> dict[str, Any] | None:
    """Answers the paid order when this payment settled it; else the order is read again by whoever needs it."""
    if payment.outcome is PayOutcome.paid:
        return await settle_paid(
            order_id,
            transaction_id=payment.transaction_id or "",
            payer_openid=payment.payer_openid,
            amount_fen=payment.amount_fen,
            policy=policy,
        )
    if payment.outcome is PayOutcome.failed:
        await settle_unpaid(order_id, OrderStatus.failed, failure=payment.error_code or "FAILED")
    else:  # unknown: ask again soon
        await Order.update({Order.next_query_at: utcnow() + timedelta(seconds=policy.query_interval)}).where(
            (Order.id == order_id) & (Order.status == OrderStatus.paying)
        )
    return None


async def _pursue_inline(order_id: int, *, provider: PaymentProvider, policy: CheckoutPolicy) -> dict[str, Any]:
    """Keep asking while the till waits (a few seconds); after that the sweeper carries on."""
    deadline = asyncio.get_running_loop().time() + policy.inline_wait
    while True:
        order = await get_order(order_id)
        if order["status"] != OrderStatus.paying:
            return order
        wait = (order["next_query_at"] - utcnow()).total_seconds()
        if asyncio.get_running_loop().time() + max(wait, 0) > deadline:
            return order
        await asyncio.sleep(max(wait, 0))
        await advance(order_id, provider=provider, policy=policy)


async def await_outcome(order_id: int, policy: CheckoutPolicy) -> dict[str, Any]:
    """A duplicate request waits for the first one's outcome as long as the till would."""
    deadline = asyncio.get_running_loop().time() + policy.inline_wait
    while True:
        order = await get_order(order_id)
        if order["status"] != OrderStatus.paying or asyncio.get_running_loop().time() >= deadline:
            return order
        await asyncio.sleep(0.05)


async def advance(order_id: int, *, provider: PaymentProvider, policy: CheckoutPolicy) -> None:
    """One step for a payment whose outcome is unknown, by whichever worker claims it first."""
    now = utcnow()
    claimed = (
        await Order.update({Order.next_query_at: now + timedelta(seconds=policy.query_interval)})
        .where((Order.id == order_id) & (Order.status == OrderStatus.paying) & (Order.next_query_at <= now))
        .returning(Order.out_trade_no, Order.reverse_at, Order.channel)
    )
    if not claimed:
        return
    out_trade_no, deadline = claimed[0]["out_trade_no"], claimed[0]["reverse_at"]
    if claimed[0]["channel"] == OrderChannel.store_code:  # asked about less often: the shopper may take minutes
        await Order.update({Order.next_query_at: now + timedelta(seconds=policy.store_payment_query_interval)}).where(
            (Order.id == order_id) & (Order.status == OrderStatus.paying)
        )
    try:
        trade = await provider.query(out_trade_no)
    except NOT_DONE:
        return  # asked again at the next step
    if trade.paid:  # even at the last moment, a payment wins
        await settle_paid(
            order_id,
            transaction_id=trade.transaction_id or "",
            payer_openid=trade.payer_openid,
            amount_fen=trade.amount_fen,
            policy=policy,
        )
    elif trade.state is TradeState.payerror:
        await settle_unpaid(order_id, OrderStatus.failed, failure="PAYERROR")
    elif trade.state in (TradeState.revoked, TradeState.closed):
        await settle_unpaid(order_id, OrderStatus.cancelled, failure=trade.state.value)
    elif now >= deadline:  # a query has just said it is not paid: only now may it be reversed or closed
        if claimed[0]["channel"] == OrderChannel.store_code:
            await _close(order_id, out_trade_no, provider=provider, policy=policy)
        else:
            await _reverse(order_id, out_trade_no, provider=provider)


async def _close(order_id: int, out_trade_no: str, *, provider: PaymentProvider, policy: CheckoutPolicy) -> None:
    """The store-code deadline has passed: the order ends here first, so money arriving from now on goes back."""
    await settle_unpaid(order_id, OrderStatus.cancelled, failure="EXPIRED")
    await _close_at_provider(order_id, out_trade_no, provider=provider, policy=policy)


async def _close_at_provider(
    order_id: int, out_trade_no: str, *, provider: PaymentProvider, policy: CheckoutPolicy
) -> None:
    """Close the trade at WeChat Pay; money it took first goes back. Until WeChat Pay has answered, the
    closed order stays due, so a payment whose notification is lost is still found and refunded."""
    try:
        paid = await close_or_find_payment(provider, out_trade_no)
        if paid is not None:  # the shopper paid just as the order closed
            await refunds.refund_late_payment(
                order_id, transaction_id=paid.transaction_id or "", provider=provider, policy=policy
            )
    except NOT_DONE as error:
        logger.warning("closing at the provider failed", extra={"order_id": order_id, "error": repr(error)})
        await Order.update(
            {Order.next_query_at: utcnow() + timedelta(seconds=policy.store_payment_query_interval)}
        ).where((Order.id == order_id) & (Order.status == OrderStatus.cancelled))
        return
    await Order.update({Order.next_query_at: None}).where(Order.id == order_id)


async def _close_again(order_id: int, *, provider: PaymentProvider, policy: CheckoutPolicy) -> None:
    now = utcnow()
    claimed = (
        await Order.update({Order.next_query_at: now + timedelta(seconds=policy.store_payment_query_interval)})
        .where((Order.id == order_id) & (Order.status == OrderStatus.cancelled) & (Order.next_query_at <= now))
        .returning(Order.out_trade_no)
    )
    if claimed:
        await _close_at_provider(order_id, claimed[0]["out_trade_no"], provider=provider, policy=policy)


async def _reverse(order_id: int, out_trade_no: str, *, provider: PaymentProvider) -> bool:
    for _ in range(MAX_RECALLS):
        try:
            reversal = await provider.reverse(out_trade_no)
        except NO_ANSWER:
            return False  # the next step queries and reverses again
        if reversal.done:
            await settle_unpaid(order_id, OrderStatus.cancelled, failure="REVERSED")
            return True
        if not reversal.recall:
            return False
    return False


async def settle_paid(
    order_id: int, *, transaction_id: str, payer_openid: str | None, amount_fen: int | None, policy: CheckoutPolicy
) -> dict[str, Any] | None:
    """The order is paid, its payer a member (enrolled if new), its points earned: one transaction, exactly once.

    Answers the paid order, or None when it was settled already (by another request or worker).
    """
    for attempt in range(SETTLE_ATTEMPTS):
        try:
            return await _settle_paid(
                order_id, transaction_id=transaction_id, payer_openid=payer_openid, amount_fen=amount_fen, policy=policy
            )
        except Exception as error:
            # The same payer enrolled by a concurrent payment at another till: again, finding that member.
            if not is_unique_violation(error) or attempt == SETTLE_ATTEMPTS - 1:
                raise
    return None


async def _settle_paid(
    order_id: int, *, transaction_id: str, payer_openid: str | None, amount_fen: int | None, policy: CheckoutPolicy
) -> dict[str, Any] | None:
    now = utcnow()
    async with write_transaction():
        claimed = await _CLAIM_PAID.run(order_id, now, transaction_id, payer_openid or "")
        if not claimed:
            return None
        store_id, paid_fen, member_id = claimed[0]["store"], claimed[0]["paid_fen"], claimed[0]["member"]
        if amount_fen is not None and amount_fen != paid_fen:
            logger.error("paid amount differs from the order", extra={"order_id": order_id})
        enrolled = False
        if member_id is None and payer_openid:
            member_id, enrolled = await members.enrol_payer(
                WeChatSession(app_id=policy.app_id, openid=payer_openid, unionid=None), store_id=store_id
            )
        earned = 0
        if member_id is not None:
            store = await stores.recent_store(store_id)
            earned = paid_fen * store["points_per_yuan"] // 100
            if earned:
                await points.earn(
                    member_id,
                    earned,
                    store_id=store_id,
                    source_type=SOURCE,
                    source_id=str(order_id),
                    idempotency_key=f"{SOURCE}:{order_id}:earn",
                    now=now,
                    policy=policy.points,
                    enrolled_now=enrolled,
                )
        if member_id is not None:
            if claimed[0]["scene"]:
                await referrals.attribute(
                    member_id, claimed[0]["scene"], is_new=enrolled, excluding_order=order_id, now=now
                )
            if claimed[0]["scene"] or not enrolled:  # a payer enrolled just now has no referral without a scene
                await referrals.on_paid_order(member_id, order_id, now=now)
        # The member is set only where none was: a merge may have moved the order to a survivor already.
        settled = []
        if member_id is not None:
            settled = await _PAID_BY.run(order_id, member_id, enrolled, earned)
        if not settled:
            settled = await _PAID_POINTS.run(order_id, earned)
    # One line for both events: a till enrolment is "order paid, payer enrolled".
    logger.info(
        "order paid, payer enrolled" if enrolled else "order paid",
        extra={"order_id": order_id, "member_id": member_id, "member_enrolled": enrolled},
    )
    return settled[0]


async def settle_unpaid(order_id: int, status: OrderStatus, *, failure: str) -> None:
    """The payment did not happen: the order ends, and the points it reserved come back."""
    async with write_transaction():
        claimed = (
            await Order.update({Order.status: status, Order.failure: failure, Order.next_query_at: None})
            .where((Order.id == order_id) & (Order.status == OrderStatus.paying))
            .returning(Order.points_redeemed)
        )
        if claimed and claimed[0]["points_redeemed"]:
            await points.reverse(
                SOURCE, str(order_id), refunded=1, of=1, idempotency_key=f"{SOURCE}:{order_id}:release"
            )
    if claimed:
        logger.info("order not paid", extra={"order_id": order_id, "status": status.value})


async def cancel(order_id: int, *, provider: PaymentProvider, policy: CheckoutPolicy) -> dict[str, Any]:
    """The cashier gives up on a payment: asked once more, then reversed unless it was paid after all."""
    order = await get_order(order_id)
    if order["status"] in (OrderStatus.failed, OrderStatus.cancelled):
        return order
    if order["status"] != OrderStatus.paying:
        raise OrderNotCancellable(order_id=order_id)
    try:
        trade = await provider.query(order["out_trade_no"])
    except NOT_DONE:
        raise ProviderUnreachable(order_id=order_id) from None  # the sweeper carries on meanwhile
    if trade.paid:
        await settle_paid(
            order_id,
            transaction_id=trade.transaction_id or "",
            payer_openid=trade.payer_openid,
            amount_fen=trade.amount_fen,
            policy=policy,
        )
        raise OrderNotCancellable("The shopper had already paid.", order_id=order_id)
    if order["channel"] == OrderChannel.store_code:
        await _close(order_id, order["out_trade_no"], provider=provider, policy=policy)
    else:
        await _reverse(order_id, order["out_trade_no"], provider=provider)
    return await get_order(order_id)


async def advance_due(*, provider: PaymentProvider, policy: CheckoutPolicy, now: datetime | None = None) -> int:
    """The sweeper's part: every payment whose next step is due gets it; answers how many."""
    due = (
        await Order.select(Order.id, Order.status)
        .where(
            Order.status.is_in([OrderStatus.paying, OrderStatus.cancelled]) & (Order.next_query_at <= (now or utcnow()))
        )
        .limit(200)
    )
    for row in due:
        if row["status"] == OrderStatus.paying:
            await advance(row["id"], provider=provider, policy=policy)
        else:  # a store-code order whose close WeChat Pay has not confirmed yet
            await _close_again(row["id"], provider=provider, policy=policy)
    return len(due)


async def move_orders(survivor_id: int, merged_id: int) -> int:
    """A member merge: the merged member's orders become the survivor's; answers how many moved."""
    moved = await Order.update({Order.member: survivor_id}).where(Order.member == merged_id).returning(Order.id)
    return len(moved)


async def member_orders(member_id: int, *, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    query = Order.select().where(Order.member == member_id)
    if before_id is not None:
        query = query.where(Order.id < before_id)
    return await query.order_by(Order.id, ascending=False).limit(limit)


# Store-code payments: the shopper scanned the store's code and pays in the mini-program --------------


async def payer_openid(member_id: int, app_id: str) -> str:
    prefix = members.openid_value(app_id, "")
    rows = await MemberIdentity.select(MemberIdentity.value).where(
        (MemberIdentity.member == member_id) & (MemberIdentity.kind == IdentityKind.wechat_openid)
    )
    for row in rows:
        if row["value"].startswith(prefix):
            return row["value"][len(prefix) :]
    raise PayerUnknown(member_id=member_id)


async def pay_at_store(
    *,
    store_id: int,
    member_id: int,
    amount_fen: int,
    points_to_redeem: int,
    provider: PaymentProvider,
    policy: CheckoutPolicy,
) -> tuple[dict[str, Any], dict[str, str]]:
    """A mini-program order at a store: answers the order and the wx.requestPayment parameters.

    The order is paid only by a verified notification or a query, never by the client saying so.
    """
    discount = points_discount(
        amount_fen=amount_fen, member_id=member_id, points_to_redeem=points_to_redeem, policy=policy
    )
    store = await Store.select(Store.id, Store.name).where((Store.id == store_id) & Store.active.eq(True)).first()
    if store is None:
        raise StoreNotFound(store_id=store_id)
    openid = await payer_openid(member_id, policy.app_id)
    now = utcnow()
    out_trade_no = new_out_trade_no(now)
    async with write_transaction():
        order_id = await insert_row(
            Order,
            store=store_id,
            staff=None,
            member=member_id,
            channel=OrderChannel.store_code,
            amount_fen=amount_fen,
            points_redeemed=points_to_redeem,
            paid_fen=amount_fen - discount,
            out_trade_no=out_trade_no,
            idempotency_key=out_trade_no,
            request_hash="",
            next_query_at=now + timedelta(seconds=policy.store_payment_query_interval),
            reverse_at=now + timedelta(seconds=policy.store_payment_close_after),
            created_at=now,
        )
        if points_to_redeem:
            await points.redeem(
                member_id,
                points_to_redeem,
                store_id=store_id,
                source_type=SOURCE,
                source_id=str(order_id),
                idempotency_key=f"{SOURCE}:{order_id}:redeem",
                now=now,
            )
    try:
        pay_params = await provider.create_jsapi(
            out_trade_no=out_trade_no,
            amount_fen=amount_fen - discount,
            payer_openid=openid,
            description=store["name"][:127],
            expires_in_seconds=math.ceil(policy.store_payment_close_after),
        )
    except NOT_DONE as error:
        logger.warning("JSAPI order not created", extra={"order_id": order_id, "error": repr(error)})
        await settle_unpaid(order_id, OrderStatus.failed, failure="PREPAY_FAILED")
        raise PaymentNotStarted(order_id=order_id) from None
    return await get_order(order_id), pay_params


async def accept_transaction_notice(
    notice: TransactionNotice, *, provider: PaymentProvider, policy: CheckoutPolicy
) -> bool:
    """A verified payment notification; answers False when the trade is not a checkout's.

    Paid at most once by compare-and-set; a replay changes nothing; money for an order that
    had already been closed goes back.
    """
    order = (
        await Order.select(Order.id, Order.paid_fen, Order.status)
        .where(Order.out_trade_no == notice.out_trade_no)
        .first()
    )
    if order is None:
        return False
    check_transaction_notice(notice, provider=provider, amount_fen=order["paid_fen"], order_id=order["id"])
    if notice.trade_state != TradeState.success.value:
        return True
    await settle_paid(
        order["id"],
        transaction_id=notice.transaction_id,
        payer_openid=notice.payer_openid or None,
        amount_fen=notice.amount_fen,
        policy=policy,
    )
    settled = await get_order(order["id"])
    if settled["status"] in (OrderStatus.cancelled, OrderStatus.failed):
        await refunds.refund_late_payment(
            order["id"], transaction_id=notice.transaction_id, provider=provider, policy=policy
        )
    return True
