"""The till: checkout with the shopper's payment code (one order per idempotency key, one payment call per
order, the outcome waited for inline for a few seconds) and payment by the store's code in the mini-program.

The money moves through `payments/` like every order's; what stays here is the till's own: the checks
before any provider call, the points a checkout redeems, the inline wait, and the replay of a retried
request.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backend.cashier.codes import PaymentCodeKind, classify_payment_code
from backend.cashier.errors import (
    AmountOutOfRange,
    IdempotencyConflict,
    InvalidPaymentCode,
    ProviderUnsupported,
    StoreNotFound,
)
from backend.core.clock import utcnow
from backend.core.db import is_unique_violation, write_transaction
from backend.core.idempotency import request_hash
from backend.coupons import service as coupons
from backend.coupons.service import Applied
from backend.members import service as members
from backend.membership import standing
from backend.orders import service as orders
from backend.orders.service import OrderRecord
from backend.orders.tables import OrderKind, OrderStatus
from backend.payments import service as payments
from backend.payments.errors import NotCancellable
from backend.payments.numbers import new_out_trade_no
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import PaymentProvider
from backend.payments.tables import TradeMethod
from backend.points.effects import redeem_for_order, redemption_discount
from backend.settings import Settings
from backend.stores import service as stores

CHANNELS = (OrderKind.till, OrderKind.store_code)  # the orders the till shows, cancels and refunds


@dataclass(frozen=True, slots=True)
class CheckoutPolicy:
    max_amount_fen: int = 5_000_000
    redeem_points_per_yuan: int = 100
    inline_wait: float = 8.0  # the till waits this long for an unknown outcome before it is answered `paying`

    @classmethod
    def from_settings(cls, settings: Settings) -> "CheckoutPolicy":
        return cls(
            max_amount_fen=settings.checkout_max_amount_fen,
            redeem_points_per_yuan=settings.redeem_points_per_yuan,
            inline_wait=settings.micropay_inline_wait_seconds,
        )


def check_replay(order: OrderRecord, **request: Any) -> None:
    if order.request_hash != request_hash(**request):
        raise IdempotencyConflict(order_id=order.id)


async def replayed_order(
    store_id: int, idempotency_key: str, request: dict[str, Any], policy: CheckoutPolicy
) -> OrderRecord | None:
    """The order an earlier request with this key made (once it is settled, within the till's wait), or None."""
    existing = await orders.find_by_key(store_id, idempotency_key)
    if existing is None:
        return None
    check_replay(existing, **request)
    return await await_outcome(existing.id, policy)


def validate_payment_code(auth_code: str) -> None:
    kind = classify_payment_code(auth_code)
    if kind is None:
        raise InvalidPaymentCode()
    if kind is PaymentCodeKind.alipay:
        raise ProviderUnsupported()


@dataclass(frozen=True, slots=True)
class Discounts:
    """What comes off a payment, in this order: the member's tier's discount, the coupon (its minimum spend judged
    on what the tier left), then the points (on what is left after both)."""

    tier_fen: int
    coupon: Applied
    points_fen: int

    @property
    def total_fen(self) -> int:
        return self.tier_fen + self.coupon.discount_fen + self.points_fen


async def discounts(
    kind: OrderKind,
    *,
    store_id: int,
    amount_fen: int,
    member_id: int | None,
    points_to_redeem: int,
    coupon_id: int | None,
    policy: CheckoutPolicy,
    now: datetime,
) -> Discounts:
    """Every discount of a till or store-code payment, refused before any provider call."""
    if amount_fen > policy.max_amount_fen:
        raise AmountOutOfRange(details={"maxAmountFen": policy.max_amount_fen})
    tier_fen = 0
    if member_id is not None and (percent := await standing.tier_discount_percent(member_id)):
        tier_fen = amount_fen * percent // 100
    coupon = await coupons.apply(
        coupon_id, member_id=member_id, channel=kind, store_id=store_id, amount_fen=amount_fen - tier_fen, now=now
    )
    points = redemption_discount(
        points_to_redeem,
        amount_fen=amount_fen - tier_fen - coupon.discount_fen,
        member_id=member_id,
        per_yuan=policy.redeem_points_per_yuan,
    )
    return Discounts(tier_fen=tier_fen, coupon=coupon, points_fen=points)


async def _open_order(
    kind: OrderKind,
    method: TradeMethod,
    *,
    store_id: int,
    member_id: int | None,
    amount_fen: int,
    off: Discounts,
    points_to_redeem: int,
    out_trade_no: str,
    pay_by: datetime,
    idempotency_key: str,
    now: datetime,
    payment_policy: PaymentPolicy,
    staff_id: int | None = None,
    request_hash: str = "",
    scene: str = "",
) -> tuple[int, int]:
    """In one write transaction: the order, the trade that asks for its money, and the points and coupon it takes
    off (reserved with it, given back if it is not paid). Answers (order id, trade id)."""
    async with write_transaction():
        order_id = await orders.place_order(
            kind=kind,
            store_id=store_id,
            staff_id=staff_id,
            member_id=member_id,
            amount_fen=amount_fen,
            discount_fen=off.total_fen,
            points_redeemed=points_to_redeem,
            coupon_id=off.coupon.coupon_id,
            coupon_discount_fen=off.coupon.discount_fen,
            tier_discount_fen=off.tier_fen,
            out_trade_no=out_trade_no,
            pay_by=pay_by,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            scene=scene,
            now=now,
        )
        trade_id = await payments.open_trade(
            order_id,
            method=method,
            out_trade_no=out_trade_no,
            amount_fen=amount_fen - off.total_fen,
            expires_at=pay_by,
            now=now,
            policy=payment_policy,
        )
        await redeem_for_order(
            order_id, member_id=member_id, points_to_redeem=points_to_redeem, store_id=store_id, now=now
        )
        await coupons.use(off.coupon, member_id=member_id, order_id=order_id, now=now)
    return order_id, trade_id


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
    payment_policy: PaymentPolicy,
    policy: CheckoutPolicy,
    coupon_id: int | None = None,
    scene: str = "",
) -> tuple[OrderRecord, bool]:
    """Take a payment-code payment; answers the order once it is settled or the inline wait is over, and
    whether this request created it (a concurrent duplicate gets the first request's order)."""
    validate_payment_code(auth_code)
    now = utcnow()
    off = await discounts(
        OrderKind.till,
        store_id=store_id,
        amount_fen=amount_fen,
        member_id=member_id,
        points_to_redeem=points_to_redeem,
        coupon_id=coupon_id,
        policy=policy,
        now=now,
    )
    discount = off.total_fen
    out_trade_no = new_out_trade_no(now)
    expires_at = now + timedelta(seconds=payment_policy.payment_timeout)
    try:
        order_id, trade_id = await _open_order(
            OrderKind.till,
            TradeMethod.micropay,
            store_id=store_id,
            member_id=member_id,
            amount_fen=amount_fen,
            off=off,
            points_to_redeem=points_to_redeem,
            out_trade_no=out_trade_no,
            pay_by=expires_at,
            idempotency_key=idempotency_key,
            now=now,
            payment_policy=payment_policy,
            staff_id=staff_id,
            request_hash=request_hash(**request),
            scene=scene,
        )
    except Exception as error:
        if not is_unique_violation(error):
            raise
        # The same checkout again (a double scan, a retry): the first request's order, and no second payment.
        existing = await orders.find_by_key(store_id, idempotency_key)
        assert existing is not None
        check_replay(existing, **request)
        return await await_outcome(existing.id, policy), False
    paid = await payments.micropay(
        trade_id,
        out_trade_no=out_trade_no,
        amount_fen=amount_fen - discount,
        auth_code=auth_code,
        store_ref=str(store_id),
        provider=provider,
        policy=payment_policy,
    )
    if paid is not None:
        return paid, True
    return await _pursue_inline(
        order_id, trade_id, provider=provider, payment_policy=payment_policy, policy=policy
    ), True


async def get_order(order_id: int) -> OrderRecord | None:
    """A till or store-code order; any other channel's is not the till's."""
    order = await orders.find_order(order_id)
    return order if order is not None and order.kind in CHANNELS else None


async def _current(order_id: int) -> OrderRecord:
    order = await orders.find_order(order_id)
    assert order is not None
    return order


async def _pursue_inline(
    order_id: int, trade_id: int, *, provider: PaymentProvider, payment_policy: PaymentPolicy, policy: CheckoutPolicy
) -> OrderRecord:
    """Keep asking while the till waits (a few seconds); after that the sweeper carries on."""
    deadline = asyncio.get_running_loop().time() + policy.inline_wait
    while True:
        order = await _current(order_id)
        trade = await payments.find_trade(trade_id)
        if order.status is not OrderStatus.paying or trade is None or trade.next_query_at is None:
            return order
        wait = max((trade.next_query_at - utcnow()).total_seconds(), 0)
        if asyncio.get_running_loop().time() + wait > deadline:
            return order
        await asyncio.sleep(wait)
        await payments.advance(trade_id, provider=provider, policy=payment_policy)


async def await_outcome(order_id: int, policy: CheckoutPolicy) -> OrderRecord:
    """A duplicate request waits for the first one's outcome as long as the till would."""
    deadline = asyncio.get_running_loop().time() + policy.inline_wait
    while True:
        order = await _current(order_id)
        if order.status is not OrderStatus.paying or asyncio.get_running_loop().time() >= deadline:
            return order
        await asyncio.sleep(0.05)


async def cancel(order_id: int, *, provider: PaymentProvider, payment_policy: PaymentPolicy) -> OrderRecord:
    """The cashier gives up on a payment: asked once more, then reversed (or closed) unless it was paid after all."""
    order = await _current(order_id)
    if order.status in orders.UNPAID:
        return order
    if order.status is not OrderStatus.paying:
        raise NotCancellable(order_id=order_id)
    trade = await payments.trade_of(order_id)
    assert trade is not None
    await payments.cancel(trade.id, provider=provider, policy=payment_policy)
    return await _current(order_id)


# Store-code payments: the shopper scanned the store's code and pays in the mini-program --------------


async def pay_at_store(
    *,
    store_id: int,
    member_id: int,
    amount_fen: int,
    points_to_redeem: int,
    provider: PaymentProvider,
    payment_policy: PaymentPolicy,
    policy: CheckoutPolicy,
    coupon_id: int | None = None,
) -> tuple[OrderRecord, dict[str, str]]:
    """A mini-program order at a store: answers the order and the wx.requestPayment parameters.

    The order is paid only by a verified notification or a query, never by the client saying so.
    """
    now = utcnow()
    off = await discounts(
        OrderKind.store_code,
        store_id=store_id,
        amount_fen=amount_fen,
        member_id=member_id,
        points_to_redeem=points_to_redeem,
        coupon_id=coupon_id,
        policy=policy,
        now=now,
    )
    discount = off.total_fen
    store = await stores.recent_store(store_id)
    if store is None or not store.active:
        raise StoreNotFound(store_id=store_id)
    openid = await members.payer_openid(member_id, payment_policy.app_id)
    out_trade_no = new_out_trade_no(now)
    pay_by = now + timedelta(seconds=payment_policy.jsapi_pay_within)
    order_id, trade_id = await _open_order(
        OrderKind.store_code,
        TradeMethod.jsapi,
        store_id=store_id,
        member_id=member_id,
        amount_fen=amount_fen,
        off=off,
        points_to_redeem=points_to_redeem,
        out_trade_no=out_trade_no,
        pay_by=pay_by,
        idempotency_key=out_trade_no,
        now=now,
        payment_policy=payment_policy,
    )
    pay_params = await payments.create_jsapi(
        trade_id,
        out_trade_no=out_trade_no,
        amount_fen=amount_fen - discount,
        payer_openid=openid,
        description=store.name,
        expires_at=pay_by,
        provider=provider,
    )
    return await _current(order_id), pay_params
