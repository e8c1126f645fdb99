"""Refunds: money back for (part of) a paid order, exactly once per idempotency key, never more than was paid.

    processing -> succeeded   the provider says SUCCESS (at once, in a notification, or at a query);
                              points follow in proportion through the ledger
    processing -> failed      CLOSED, or a definite refusal; the amount may be refunded again
    (ABNORMAL keeps the refund processing and the amount taken: the money is on its way back and
    someone must finish it in the merchant platform; it is logged as an error and asked about until then)

`Order.refunded_fen` counts every refund under way or done: it is raised by a guarded
update in the refund's own transaction, so concurrent refunds can never add up to more
than the order's `paid_fen`.
"""

import hashlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backend.cashier.errors import (
    IdempotencyConflict,
    OrderNotFound,
    OrderNotRefundable,
    RefundExceedsPaid,
    RefundRejected,
)
from backend.cashier.tables import Order, OrderStatus, Refund, RefundKind, RefundStatus
from backend.core.clock import utcnow
from backend.core.db import insert_row, is_unique_violation, write_transaction
from backend.core.idempotency import request_hash
from backend.payments.calls import ask_refund, look_up_refund, refund_notice_result
from backend.payments.provider import PaymentProvider, RefundNotice, RefundResult, RefundState
from backend.points import service as points
from backend.points.tables import EntryKind
from backend.referrals import service as referrals

if TYPE_CHECKING:
    from backend.cashier.service import CheckoutPolicy

logger = logging.getLogger(__name__)

SOURCE = "till_order"
REFUNDABLE = [OrderStatus.paid, OrderStatus.partially_refunded]
UNPAID = [OrderStatus.cancelled, OrderStatus.failed]
LATE_PAYMENT_KEY = "late-payment"


def out_refund_no(out_trade_no: str, idempotency_key: str) -> str:
    """Derived from the order and the key, so a retried request asks the provider for the same refund."""
    return "R" + hashlib.sha256(f"{out_trade_no}\n{idempotency_key}".encode()).hexdigest()[:31]


async def get_refund(refund_id: int) -> dict[str, Any]:
    return await Refund.select().where(Refund.id == refund_id).first()


async def request_refund(
    order_id: int,
    *,
    staff_id: int | None,
    amount_fen: int,
    idempotency_key: str,
    reason: str,
    provider: PaymentProvider,
    policy: "CheckoutPolicy",
) -> tuple[dict[str, Any], bool]:
    """Refund part or all of a paid order; answers the refund and whether this request created it."""
    order = (
        await Order.select(Order.id, Order.out_trade_no, Order.paid_fen, Order.status, Order.refunded_fen)
        .where(Order.id == order_id)
        .first()
    )
    if order is None:
        raise OrderNotFound(order_id=order_id)
    digest = request_hash(amount_fen=amount_fen, reason=reason)
    existing = await _by_key(order_id, idempotency_key)
    if existing is not None:
        return _replay(existing, digest), False
    try:
        async with write_transaction():
            reserved = (
                await Order.update({Order.refunded_fen: Order.refunded_fen + amount_fen})
                .where(
                    (Order.id == order_id)
                    & Order.status.is_in(REFUNDABLE)
                    & (Order.refunded_fen <= order["paid_fen"] - amount_fen)
                )
                .returning(Order.id)
            )
            if not reserved:
                current = await Order.select(Order.status, Order.refunded_fen).where(Order.id == order_id).first()
                if current["status"] not in REFUNDABLE:
                    raise OrderNotRefundable(order_id=order_id)
                raise RefundExceedsPaid(details={"refundableFen": order["paid_fen"] - current["refunded_fen"]})
            refund_id = await insert_row(
                Refund,
                order=order_id,
                kind=RefundKind.requested,
                staff=staff_id,
                out_refund_no=out_refund_no(order["out_trade_no"], idempotency_key),
                idempotency_key=idempotency_key,
                request_hash=digest,
                amount_fen=amount_fen,
                reason=reason,
                status=RefundStatus.processing,
                next_query_at=utcnow() + timedelta(seconds=policy.refund_query_interval),
                created_at=utcnow(),
            )
    except Exception as error:
        if not is_unique_violation(error):
            raise
        # The same refund again at the same moment: the first request's refund.
        return _replay(await _by_key(order_id, idempotency_key), digest), False
    await submit(refund_id, provider=provider, policy=policy)
    refund = await get_refund(refund_id)
    if refund["status"] == RefundStatus.failed:
        raise RefundRejected(order_id=order_id, refund_id=refund_id, failure=refund["failure"])
    return refund, True


async def _by_key(order_id: int, idempotency_key: str) -> dict[str, Any] | None:
    return await Refund.select().where((Refund.order == order_id) & (Refund.idempotency_key == idempotency_key)).first()


def _replay(refund: dict[str, Any], digest: str) -> dict[str, Any]:
    if refund["request_hash"] != digest:
        raise IdempotencyConflict("That idempotency key was used for a different refund.", refund_id=refund["id"])
    return refund


async def submit(refund_id: int, *, provider: PaymentProvider, policy: "CheckoutPolicy") -> None:
    """Ask the provider for the refund (again: the same out_refund_no is the same refund there)."""
    refund = (
        await Refund.select(
            Refund.out_refund_no, Refund.amount_fen, Refund.reason, Refund.order.out_trade_no, Refund.order.paid_fen
        )
        .where(Refund.id == refund_id)
        .first()
    )
    answer = await ask_refund(
        provider,
        out_trade_no=refund["order.out_trade_no"],
        out_refund_no=refund["out_refund_no"],
        refund_fen=refund["amount_fen"],
        total_fen=refund["order.paid_fen"],
        reason=refund["reason"],
    )
    if answer.refused:
        await fail(refund_id, failure=answer.refused)
    elif answer.result is not None:  # else no answer: the sweeper asks again
        await apply_result(refund_id, answer.result, policy=policy)


async def apply_result(refund_id: int, result: RefundResult, *, policy: "CheckoutPolicy") -> None:
    if result.state is RefundState.success:
        await settle(refund_id, provider_refund_id=result.refund_id)
    elif result.state is RefundState.closed:
        await fail(refund_id, failure=result.state.value)
    else:  # PROCESSING, or ABNORMAL: the shopper's card refused it and someone must act in the merchant platform
        failure = "ABNORMAL" if result.state is RefundState.abnormal else ""
        still = (Refund.id == refund_id) & (Refund.status == RefundStatus.processing)
        next_query = utcnow() + timedelta(seconds=policy.refund_query_interval)
        changed = (
            await Refund.update(
                {Refund.refund_id: result.refund_id, Refund.failure: failure, Refund.next_query_at: next_query}
            )
            .where(still & (Refund.failure != failure))
            .returning(Refund.order)
        )
        if changed and failure:
            logger.error(
                "refund abnormal: handle it in the WeChat Pay merchant platform",
                extra={"refund_id": refund_id, "order_id": changed[0]["order"]},
            )
        elif not changed:
            await Refund.update({Refund.next_query_at: next_query}).where(still)


async def settle(refund_id: int, *, provider_refund_id: str) -> None:
    """The money is back with the shopper: points follow in proportion, the order's status follows the sum."""
    now = utcnow()
    async with write_transaction():
        claimed = (
            await Refund.update(
                {
                    Refund.status: RefundStatus.succeeded,
                    Refund.refund_id: provider_refund_id,
                    Refund.settled_at: now,
                    Refund.next_query_at: None,
                }
            )
            .where((Refund.id == refund_id) & (Refund.status == RefundStatus.processing))
            .returning(Refund.order, Refund.kind)
        )
        if not claimed:
            return  # settled already, by a notification, a query or another worker
        order_id = claimed[0]["order"]
        order = await Order.select(Order.paid_fen).where(Order.id == order_id).first()
        done = await Refund.select(Refund.amount_fen).where(
            (Refund.order == order_id) & (Refund.status == RefundStatus.succeeded)
        )
        refunded = sum(row["amount_fen"] for row in done)
        status = OrderStatus.refunded if refunded == order["paid_fen"] else OrderStatus.partially_refunded
        if claimed[0]["kind"] == RefundKind.late_payment:
            await Order.update({Order.status: OrderStatus.refunded}).where(
                (Order.id == order_id) & Order.status.is_in(UNPAID)
            )
        else:
            posted = await points.reverse(
                SOURCE,
                str(order_id),
                refunded=refunded,
                of=order["paid_fen"],
                idempotency_key=f"{SOURCE}:{order_id}:refund:{refund_id}",
                now=now,
            )
            taken = sum(-p.delta + p.debt_delta for p in posted if p.kind is EntryKind.reverse_earn)
            given = sum(p.delta for p in posted if p.kind is not EntryKind.reverse_earn)
            await Refund.update({Refund.points_reversed: taken, Refund.points_restored: given}).where(
                Refund.id == refund_id
            )
            await Order.update({Order.status: status}).where((Order.id == order_id) & Order.status.is_in(REFUNDABLE))
            await referrals.on_order_refunded(order_id, now=now)
    logger.info("refund succeeded", extra={"refund_id": refund_id, "order_id": order_id})


async def fail(refund_id: int, *, failure: str) -> None:
    """The refund did not happen: its amount can be refunded again."""
    async with write_transaction():
        claimed = (
            await Refund.update(
                {
                    Refund.status: RefundStatus.failed,
                    Refund.failure: failure,
                    Refund.next_query_at: None,
                    Refund.settled_at: utcnow(),
                }
            )
            .where((Refund.id == refund_id) & (Refund.status == RefundStatus.processing))
            .returning(Refund.order, Refund.amount_fen)
        )
        if claimed:
            await Order.update({Order.refunded_fen: Order.refunded_fen - claimed[0]["amount_fen"]}).where(
                Order.id == claimed[0]["order"]
            )
    if claimed:
        logger.error("refund failed", extra={"refund_id": refund_id, "failure": failure})


async def refund_late_payment(
    order_id: int, *, transaction_id: str, provider: PaymentProvider, policy: "CheckoutPolicy"
) -> None:
    """Money arrived for an order that had already been closed or had failed: all of it goes back, once."""
    now, claimed = utcnow(), []
    try:
        async with write_transaction():
            claimed = (
                await Order.update(
                    {Order.refunded_fen: Order.paid_fen, Order.transaction_id: transaction_id, Order.paid_at: now}
                )
                .where((Order.id == order_id) & Order.status.is_in(UNPAID) & (Order.refunded_fen == 0))
                .returning(Order.out_trade_no, Order.paid_fen)
            )
            if claimed:
                await insert_row(
                    Refund,
                    order=order_id,
                    kind=RefundKind.late_payment,
                    staff=None,
                    out_refund_no=out_refund_no(claimed[0]["out_trade_no"], LATE_PAYMENT_KEY),
                    idempotency_key=LATE_PAYMENT_KEY,
                    request_hash="",
                    amount_fen=claimed[0]["paid_fen"],
                    reason="paid after the order closed",
                    status=RefundStatus.processing,
                    next_query_at=now + timedelta(seconds=policy.refund_query_interval),
                    created_at=now,
                )
    except Exception as error:
        if not is_unique_violation(error):
            raise
    refund = await _by_key(order_id, LATE_PAYMENT_KEY)
    if refund is None:
        return
    if claimed:
        logger.warning("payment after close: refunding", extra={"order_id": order_id})
    if refund["status"] == RefundStatus.processing:
        await submit(refund["id"], provider=provider, policy=policy)


async def accept_refund_notice(notice: RefundNotice, *, provider: PaymentProvider, policy: "CheckoutPolicy") -> bool:
    """A verified refund notification; answers False when the refund is not a checkout's."""
    refund = (
        await Refund.select(Refund.id, Refund.amount_fen).where(Refund.out_refund_no == notice.out_refund_no).first()
    )
    if refund is None:
        return False
    result = refund_notice_result(notice, provider=provider, refund_id=refund["id"])
    if result is not None:
        await apply_result(refund["id"], result, policy=policy)
    return True


async def advance_due(*, provider: PaymentProvider, policy: "CheckoutPolicy", now: datetime | None = None) -> int:
    """The sweeper's part: every refund still under way is asked about; answers how many."""
    now = now or utcnow()
    due = (
        await Refund.select(Refund.id, Refund.out_refund_no)
        .where((Refund.status == RefundStatus.processing) & (Refund.next_query_at <= now))
        .limit(200)
    )
    for row in due:
        claimed = (
            await Refund.update({Refund.next_query_at: now + timedelta(seconds=policy.refund_query_interval)})
            .where(
                (Refund.id == row["id"]) & (Refund.status == RefundStatus.processing) & (Refund.next_query_at <= now)
            )
            .returning(Refund.id)
        )
        if not claimed:
            continue
        answer = await look_up_refund(provider, row["out_refund_no"])
        if answer.missing:  # the request never reached the provider: ask again
            await submit(row["id"], provider=provider, policy=policy)
        elif answer.result is not None:
            await apply_result(row["id"], answer.result, policy=policy)
    return len(due)
