"""Refunds: money back out of an order's paid trade, once per idempotency key, never more than was paid.

    processing -> succeeded   the provider says SUCCESS (at once, in a notification, or at a query); the
                              order's refunded handlers run (points follow in proportion, a referral's
                              rewards are undone, a seat is given back)
    processing -> failed      CLOSED, or a definite refusal; the amount may be refunded again
    (ABNORMAL keeps the refund processing and the amount taken: the money is on its way back and someone
    must finish it in the merchant platform; it is logged as an error and asked about until then)

The order's `refunded_fen` counts every refund under way or done: it is raised by a guarded update in
the refund's own transaction (`orders.reserve_refund`), so concurrent refunds can never add up to more
than the order received. WeChat Pay takes at most MAX_REFUNDS refunds of one trade; the 51st is refused
here. This module imports no channel.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from piccolo.query.functions.aggregate import Count, Sum

from backend.core.clock import utcnow
from backend.core.db import heavy_reads, insert_row, is_unique_violation, write_transaction
from backend.core.idempotency import request_hash
from backend.orders import service as orders
from backend.orders.service import OrderRecord
from backend.payments.calls import ask_refund, look_up_refund, refund_notice_result
from backend.payments.errors import (
    OrderNotRefundable,
    RefundConflict,
    RefundExceedsPaid,
    RefundNotFound,
    RefundRejected,
    TooManyRefunds,
)
from backend.payments.numbers import out_refund_no
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import PaymentProvider, RefundNotice, RefundResult, RefundState
from backend.payments.tables import ENDED_UNPAID, PaymentRefund, PaymentTrade, RefundKind, RefundStatus, TradeStatus

logger = logging.getLogger(__name__)

MAX_REFUNDS = 50  # of one trade, at WeChat Pay
LATE_PAYMENT_KEY = "late-payment"
REVERSAL_KEY = "#reversal"  # no request's key can be this: theirs are [0-9A-Za-z_.:-]
SHOPPER_CANCEL_KEY = "#cancel"  # a shopper's cancel of a paid order: its refunds' keys, `#cancel:1`, `#cancel:2`...


@dataclass(slots=True)
class RefundRecord:
    id: int
    order: int
    trade: int
    kind: RefundKind
    staff: int | None
    out_refund_no: str
    idempotency_key: str
    request_hash: str
    amount_fen: int
    reason: str
    status: RefundStatus
    refund_id: str
    failure: str
    next_query_at: datetime | None
    created_at: datetime
    settled_at: datetime | None

    @classmethod
    def of(cls, row: dict) -> "RefundRecord":
        record = cls(**row)
        record.kind, record.status = RefundKind(record.kind), RefundStatus(record.status)
        return record


async def find_refund(refund_id: int) -> RefundRecord | None:
    row = await PaymentRefund.select().where(PaymentRefund.id == refund_id).first()
    return RefundRecord.of(row) if row is not None else None


async def refund_of(order_id: int, refund_id: int) -> RefundRecord:
    """A refund of this order; a refund of another order does not exist."""
    refund = await find_refund(refund_id)
    if refund is None or refund.order != order_id:
        raise RefundNotFound(refund_id=refund_id)
    return refund


async def refund_by_key(order_id: int, idempotency_key: str) -> RefundRecord | None:
    row = (
        await PaymentRefund.select()
        .where((PaymentRefund.order == order_id) & (PaymentRefund.idempotency_key == idempotency_key))
        .first()
    )
    return RefundRecord.of(row) if row is not None else None


async def failed_refunds(order_id: int, *, key_prefix: str) -> int:
    """How many of the order's refunds under keys starting with `key_prefix` failed (each retry is a new key)."""
    return await PaymentRefund.count().where(
        (PaymentRefund.order == order_id)
        & PaymentRefund.idempotency_key.like(f"{key_prefix}%")
        & (PaymentRefund.status == RefundStatus.failed)
    )


def refund_digest(*, amount_fen: int, reason: str) -> str:
    return request_hash(amount_fen=amount_fen, reason=reason)


# Asking for a refund ---------------------------------------------------------------------------------


async def create_refund(
    order: OrderRecord,
    *,
    amount_fen: int,
    idempotency_key: str,
    reason: str,
    staff_id: int | None,
    policy: PaymentPolicy,
    now: datetime,
) -> int:
    """Inside the caller's write transaction (a channel may give back its own holdings in it): claim the
    amount from the order's paid money and record the refund, to be submitted once the transaction is
    committed. Answers the refund's id; raises when the order cannot give that much back."""
    trade = (
        await PaymentTrade.select(PaymentTrade.id, PaymentTrade.out_trade_no)
        .where((PaymentTrade.order == order.id) & (PaymentTrade.status == TradeStatus.paid))
        .first()
    )
    if trade is None:
        raise OrderNotRefundable(order_id=order.id)
    reservation = await orders.reserve_refund(order, amount_fen)
    if not reservation.taken:
        if not reservation.paid:
            raise OrderNotRefundable(order_id=order.id)
        raise RefundExceedsPaid(details={"refundableFen": reservation.refundable_fen})
    # Counted under the order's row, which the reservation has just taken: concurrent refunds count in turn.
    if await PaymentRefund.count().where(PaymentRefund.trade == trade["id"]) >= MAX_REFUNDS:
        raise TooManyRefunds(details={"maxRefunds": MAX_REFUNDS}, order_id=order.id)
    return await _insert_refund(
        RefundKind.requested,
        order_id=order.id,
        trade_id=trade["id"],
        out_trade_no=trade["out_trade_no"],
        idempotency_key=idempotency_key,
        request_hash=refund_digest(amount_fen=amount_fen, reason=reason),
        amount_fen=amount_fen,
        reason=reason,
        staff_id=staff_id,
        next_query_at=now + timedelta(seconds=policy.refund_query_interval),
        now=now,
    )


async def _insert_refund(
    kind: RefundKind,
    *,
    order_id: int,
    trade_id: int,
    out_trade_no: str,
    idempotency_key: str,
    amount_fen: int,
    reason: str,
    next_query_at: datetime | None,
    now: datetime,
    request_hash: str = "",
    staff_id: int | None = None,
) -> int:
    """A refund under way (`processing`), numbered from its trade and key; answers its id."""
    return await insert_row(
        PaymentRefund,
        order=order_id,
        trade=trade_id,
        kind=kind,
        staff=staff_id,
        out_refund_no=out_refund_no(out_trade_no, idempotency_key),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        amount_fen=amount_fen,
        reason=reason[:80],
        status=RefundStatus.processing,
        next_query_at=next_query_at,
        created_at=now,
    )


async def request_refund(
    order: OrderRecord,
    *,
    amount_fen: int,
    idempotency_key: str,
    reason: str,
    staff_id: int | None,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> tuple[RefundRecord, bool]:
    """Refund part or all of a paid order; answers the refund and whether this request created it (a retry
    with the same key answers the first request's refund, and a different request under it is a conflict)."""
    digest = refund_digest(amount_fen=amount_fen, reason=reason)
    existing = await refund_by_key(order.id, idempotency_key)
    if existing is not None:
        return _replay(existing, digest), False
    try:
        async with write_transaction():
            refund_id = await create_refund(
                order,
                amount_fen=amount_fen,
                idempotency_key=idempotency_key,
                reason=reason,
                staff_id=staff_id,
                policy=policy,
                now=utcnow(),
            )
    except Exception as error:
        if not is_unique_violation(error):
            raise
        # The same refund again at the same moment: the first request's refund.
        raced = await refund_by_key(order.id, idempotency_key)
        assert raced is not None
        return _replay(raced, digest), False
    await submit(refund_id, provider=provider, policy=policy)
    refund = await find_refund(refund_id)
    assert refund is not None
    if refund.status is RefundStatus.failed:
        raise RefundRejected(order_id=order.id, refund_id=refund_id, failure=refund.failure)
    return refund, True


def _replay(refund: RefundRecord, digest: str) -> RefundRecord:
    if refund.request_hash != digest:
        raise RefundConflict(refund_id=refund.id)
    return refund


async def submit(refund_id: int, *, provider: PaymentProvider, policy: PaymentPolicy) -> None:
    """Ask the provider for the refund (again: the same out_refund_no is the same refund there)."""
    refund = (
        await PaymentRefund.select(
            PaymentRefund.out_refund_no,
            PaymentRefund.amount_fen,
            PaymentRefund.reason,
            PaymentRefund.status,
            PaymentRefund.trade.out_trade_no,
            PaymentRefund.trade.amount_fen,
        )
        .where(PaymentRefund.id == refund_id)
        .first()
    )
    if refund is None or refund["status"] != RefundStatus.processing:
        return
    answer = await ask_refund(
        provider,
        out_trade_no=refund["trade.out_trade_no"],
        out_refund_no=refund["out_refund_no"],
        refund_fen=refund["amount_fen"],
        total_fen=refund["trade.amount_fen"],
        reason=refund["reason"],
    )
    if answer.refused:
        await fail(refund_id, failure=answer.refused)
    elif answer.result is not None:  # else no answer: the sweeper asks again
        await apply_result(refund_id, answer.result, policy=policy)


async def apply_result(refund_id: int, result: RefundResult, *, policy: PaymentPolicy) -> None:
    if result.state is RefundState.success:
        await settle(refund_id, provider_refund_id=result.refund_id)
    elif result.state is RefundState.closed:
        await fail(refund_id, failure=result.state.value)
    else:  # PROCESSING, or ABNORMAL: the shopper's card refused it and someone must act in the merchant platform
        failure = "ABNORMAL" if result.state is RefundState.abnormal else ""
        still = (PaymentRefund.id == refund_id) & (PaymentRefund.status == RefundStatus.processing)
        next_query = utcnow() + timedelta(seconds=policy.refund_query_interval)
        changed = (
            await PaymentRefund.update(
                {
                    PaymentRefund.refund_id: result.refund_id,
                    PaymentRefund.failure: failure,
                    PaymentRefund.next_query_at: next_query,
                }
            )
            .where(still & (PaymentRefund.failure != failure))
            .returning(PaymentRefund.order)
        )
        if changed and failure:
            logger.error(
                "refund abnormal: handle it in the WeChat Pay merchant platform",
                extra={"refund_id": refund_id, "order_id": changed[0]["order"]},
            )
        elif not changed:
            await PaymentRefund.update({PaymentRefund.next_query_at: next_query}).where(still)


async def settle(refund_id: int, *, provider_refund_id: str) -> None:
    """The money is back with the payer: the order's status follows the sum, and its handlers run."""
    now = utcnow()
    async with write_transaction():
        claimed = (
            await PaymentRefund.update(
                {
                    PaymentRefund.status: RefundStatus.succeeded,
                    PaymentRefund.refund_id: provider_refund_id,
                    PaymentRefund.settled_at: now,
                    PaymentRefund.next_query_at: None,
                }
            )
            .where((PaymentRefund.id == refund_id) & (PaymentRefund.status == RefundStatus.processing))
            .returning(PaymentRefund.order, PaymentRefund.kind, PaymentRefund.amount_fen)
        )
        if not claimed:
            return  # settled already, by a notification, a query or another worker
        order_id = claimed[0]["order"]
        await orders.hold(order_id)  # concurrent settlements of its refunds sum one after the other
        done = (
            await PaymentRefund.select(Sum(PaymentRefund.amount_fen).as_alias("total"))
            .where((PaymentRefund.order == order_id) & (PaymentRefund.status == RefundStatus.succeeded))
            .first()
        )
        await orders.record_refunded(
            order_id,
            refund_id=refund_id,
            amount_fen=claimed[0]["amount_fen"],
            refunded_total=int(done["total"] or 0),
            late=claimed[0]["kind"] == RefundKind.late_payment,
            now=now,
        )
    logger.info("refund succeeded", extra={"refund_id": refund_id, "order_id": order_id})


async def fail(refund_id: int, *, failure: str) -> None:
    """The refund did not happen: its amount can be refunded again. (Money that arrived after its order closed
    was never the order's: its refund failing leaves it owed, for staff to return from the merchant platform.)"""
    async with write_transaction():
        claimed = (
            await PaymentRefund.update(
                {
                    PaymentRefund.status: RefundStatus.failed,
                    PaymentRefund.failure: failure[:32],
                    PaymentRefund.next_query_at: None,
                    PaymentRefund.settled_at: utcnow(),
                }
            )
            .where((PaymentRefund.id == refund_id) & (PaymentRefund.status == RefundStatus.processing))
            .returning(PaymentRefund.order, PaymentRefund.amount_fen, PaymentRefund.kind)
        )
        if claimed and claimed[0]["kind"] != RefundKind.late_payment:
            await orders.release_refund(claimed[0]["order"], claimed[0]["amount_fen"])
    if claimed:
        late = claimed[0]["kind"] == RefundKind.late_payment
        logger.error(
            "refund of a payment after close failed: return it from the merchant platform" if late else "refund failed",
            extra={"refund_id": refund_id, "order_id": claimed[0]["order"], "failure": failure},
        )


# Money that arrived too late ---------------------------------------------------------------------------


async def refund_late_payment(
    trade_id: int, *, transaction_id: str, provider: PaymentProvider, policy: PaymentPolicy
) -> None:
    """Money arrived for a trade that had already ended unpaid: all of it goes back, once."""
    now, claimed = utcnow(), []
    try:
        async with write_transaction():
            claimed = (
                await PaymentTrade.update({PaymentTrade.paid_at: now, PaymentTrade.transaction_id: transaction_id})
                .where(
                    (PaymentTrade.id == trade_id)
                    & PaymentTrade.status.is_in(list(ENDED_UNPAID))
                    & PaymentTrade.paid_at.is_null()
                )
                .returning(PaymentTrade.order, PaymentTrade.out_trade_no, PaymentTrade.amount_fen)
            )
            if claimed:  # the order counts the money once it is back with the payer (see `settle`)
                trade = claimed[0]
                await _insert_refund(
                    RefundKind.late_payment,
                    order_id=trade["order"],
                    trade_id=trade_id,
                    out_trade_no=trade["out_trade_no"],
                    idempotency_key=LATE_PAYMENT_KEY,
                    amount_fen=trade["amount_fen"],
                    reason="paid after the order closed",
                    next_query_at=now + timedelta(seconds=policy.refund_query_interval),
                    now=now,
                )
    except Exception as error:
        if not is_unique_violation(error):
            raise
    refund = (
        await PaymentRefund.select(PaymentRefund.id, PaymentRefund.status)
        .where((PaymentRefund.trade == trade_id) & (PaymentRefund.kind == RefundKind.late_payment))
        .first()
    )
    if refund is None:
        return
    if claimed:
        logger.warning("payment after close: refunding", extra={"trade_id": trade_id, "order_id": claimed[0]["order"]})
    if refund["status"] == RefundStatus.processing:
        await submit(refund["id"], provider=provider, policy=policy)


async def record_reversal(trade_id: int) -> bool:
    """WeChat Pay reversed a payment-code trade that was recorded paid meanwhile (staff cancelled it as another
    query found it paid): all its money is back with the payer, so the order is refunded in full, with its
    handlers, by a refund that records the reversal. Answers whether this call recorded it."""
    now = utcnow()
    async with write_transaction():
        claimed = (
            await PaymentTrade.update({PaymentTrade.status: TradeStatus.reversed, PaymentTrade.failure: "REVERSED"})
            .where((PaymentTrade.id == trade_id) & (PaymentTrade.status == TradeStatus.paid))
            .returning(PaymentTrade.order, PaymentTrade.out_trade_no)
        )
        if not claimed:
            return False
        order_id = claimed[0]["order"]
        await orders.hold(order_id)  # a refund asked for meanwhile waits, then finds nothing left to refund
        in_flight = await PaymentRefund.select(PaymentRefund.id).where(
            (PaymentRefund.trade == trade_id) & (PaymentRefund.status == RefundStatus.processing)
        )
        for refund in in_flight:  # the whole payment went back: no refund of it is still to come
            await fail(refund["id"], failure="REVERSED")
        order = await orders.find_order(order_id)
        assert order is not None
        remaining = order.paid_fen - order.refunded_fen  # what the refunds that succeeded did not give back
        if remaining > 0:
            if not (await orders.reserve_refund(order, remaining)).taken:
                raise RuntimeError(f"order {order.id} could not claim its reversed money")  # held: only a bug
            refund_id = await _insert_refund(
                RefundKind.reversal,
                order_id=order.id,
                trade_id=trade_id,
                out_trade_no=claimed[0]["out_trade_no"],
                idempotency_key=REVERSAL_KEY,
                amount_fen=remaining,
                reason="reversed after it was paid",
                next_query_at=None,
                now=now,
            )
            await settle(refund_id, provider_refund_id="")
    logger.warning(
        "payment reversed after it was recorded paid: refunded in full",
        extra={"trade_id": trade_id, "order_id": order.id},
    )
    return True


# Notifications and the sweeper ---------------------------------------------------------------------------


async def accept_refund_notice(notice: RefundNotice, *, provider: PaymentProvider, policy: PaymentPolicy) -> bool:
    """A verified refund notification; answers False when the refund is not ours."""
    refund = (
        await PaymentRefund.select(PaymentRefund.id).where(PaymentRefund.out_refund_no == notice.out_refund_no).first()
    )
    if refund is None:
        return False
    result = refund_notice_result(notice, provider=provider, refund_id=refund["id"])
    if result is not None:
        await apply_result(refund["id"], result, policy=policy)
    return True


async def advance_due(*, provider: PaymentProvider, policy: PaymentPolicy, now: datetime | None = None) -> int:
    """The sweeper's part: every refund still under way is asked about; answers how many."""
    now = now or utcnow()
    due = (
        await PaymentRefund.select(PaymentRefund.id, PaymentRefund.out_refund_no)
        .where((PaymentRefund.status == RefundStatus.processing) & (PaymentRefund.next_query_at <= now))
        .limit(200)
    )
    for row in due:
        claimed = (
            await PaymentRefund.update(
                {PaymentRefund.next_query_at: now + timedelta(seconds=policy.refund_query_interval)}
            )
            .where(
                (PaymentRefund.id == row["id"])
                & (PaymentRefund.status == RefundStatus.processing)
                & (PaymentRefund.next_query_at <= now)
            )
            .returning(PaymentRefund.id)
        )
        if not claimed:
            continue
        answer = await look_up_refund(provider, row["out_refund_no"])
        if answer.missing:  # the request never reached the provider: ask again
            await submit(row["id"], provider=provider, policy=policy)
        elif answer.result is not None:
            await apply_result(row["id"], answer.result, policy=policy)
    return len(due)


async def refunds_by_store(since: datetime, until: datetime) -> dict[int, tuple[int, int]]:
    """Per store: (how many, fen) of the refunds asked for in [since, until) and not refused: money given back
    from what the store's orders received (money that came after an order had closed, and went back, was never
    received by the order, and is not counted)."""
    with heavy_reads():
        rows = (
            await PaymentRefund.select(
                PaymentRefund.order.store.as_alias("store"),
                Count().as_alias("refunds"),
                Sum(PaymentRefund.amount_fen).as_alias("fen"),
            )
            .where((PaymentRefund.created_at >= since) & (PaymentRefund.created_at < until))
            .where((PaymentRefund.status != RefundStatus.failed) & (PaymentRefund.kind != RefundKind.late_payment))
            .group_by(PaymentRefund.order.store)
        )
    return {row["store"]: (int(row["refunds"]), int(row["fen"] or 0)) for row in rows}
