"""Trades: every attempt to take an order's money, whatever the order's channel, through one state machine.

    created -> paying      the provider has the trade (or may have it): it is queried until it ends
    created | paying -> paid       the provider says SUCCESS, at once, at a query or in a verified notification
    created | paying -> failed     a definite refusal: nothing was taken
    created | paying -> reversed   a payment code still unpaid at `expires_at` (a query said so just before)
    created | paying -> closed     a mini-program trade still unpaid at `expires_at`, or given back by its
                                   payer: closed here first, then at the provider (asked again until it has
                                   answered); money that lands on it afterwards goes back in full

Each move is a compare-and-set on the trade's status, in the transaction that records the order's
outcome through `orders.service`, so the order's handlers run exactly once however many requests,
notifications and sweepers race for it. This module imports no channel.
"""

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.core.clock import utcnow
from backend.core.db import Prepared, insert_row, is_deadlock, is_unique_violation, write_transaction
from backend.members import service as members
from backend.orders import service as orders
from backend.orders.service import OrderRecord
from backend.orders.tables import OrderStatus
from backend.payments import refunds
from backend.payments.calls import close_or_find_payment
from backend.payments.errors import AlreadyPaid, NotCancellable, PaymentNotStarted, ProviderUnreachable
from backend.payments.notices import check_transaction_notice
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import (
    NO_ANSWER,
    NOT_DONE,
    Payment,
    PaymentProvider,
    PayOutcome,
    RefundNotice,
    TradeQuery,
    TradeState,
    TransactionNotice,
)
from backend.payments.tables import (
    ENDED_UNPAID,
    OPEN,
    PaymentRefund,
    PaymentTrade,
    RefundStatus,
    TradeMethod,
    TradeStatus,
)

logger = logging.getLogger(__name__)

MAX_RECALLS = 5
SETTLE_ATTEMPTS = 3


@dataclass(slots=True)
class TradeRecord:
    id: int
    order: int
    out_trade_no: str
    method: TradeMethod
    amount_fen: int
    status: TradeStatus
    transaction_id: str
    payer_openid: str
    failure: str
    next_query_at: datetime | None
    expires_at: datetime
    created_at: datetime
    paid_at: datetime | None


def _next_jsapi_query(*, created_at: datetime, expires_at: datetime, now: datetime, policy: PaymentPolicy) -> datetime:
    """A mini-program trade is asked about in case its notification was lost: after `jsapi_query_interval`,
    then at doubling intervals (its age), so that a flash sale's thousands of unpaid orders do not query
    WeChat Pay every minute each; and always at its deadline, when a query decides whether it is closed."""
    if expires_at <= now:  # the deadline's query did not end it (WeChat Pay did not answer): soon again
        return now + timedelta(seconds=policy.jsapi_query_interval)
    wait = max(policy.jsapi_query_interval, (now - created_at).total_seconds())
    return min(now + timedelta(seconds=wait), expires_at)


# Opening a trade, inside the transaction that places its order ----------------------------------------


async def open_trade(
    order_id: int,
    *,
    method: TradeMethod,
    out_trade_no: str,
    amount_fen: int,
    expires_at: datetime,
    now: datetime,
    policy: PaymentPolicy,
) -> int:
    """Inside the caller's write transaction: the trade that asks for the order's money; answers its id.

    A payment code's first query is the caller's (the till waits inline); the sweeper's comes only
    after the trade has expired. A mini-program trade is first asked about after `jsapi_query_interval`
    (then as `_next_jsapi_query` says).
    """
    first_query = (
        expires_at + timedelta(seconds=policy.query_interval)
        if method is TradeMethod.micropay
        else _next_jsapi_query(created_at=now, expires_at=expires_at, now=now, policy=policy)
    )
    return await insert_row(
        PaymentTrade,
        order=order_id,
        out_trade_no=out_trade_no,
        method=method,
        amount_fen=amount_fen,
        status=TradeStatus.created,
        next_query_at=first_query,
        expires_at=expires_at,
        created_at=now,
    )


_TRADE = Prepared(lambda trade_id: PaymentTrade.select().where(PaymentTrade.id == trade_id).first())
_TRADE_BY_NUMBER = Prepared(
    lambda out_trade_no: (
        PaymentTrade.select(PaymentTrade.id, PaymentTrade.amount_fen)
        .where(PaymentTrade.out_trade_no == out_trade_no)
        .first()
    )
)


async def find_trade(trade_id: int) -> TradeRecord | None:
    row = await _TRADE.run(trade_id)
    return _record(row) if row is not None else None


async def trade_of(order_id: int) -> TradeRecord | None:
    """The order's latest trade."""
    row = (
        await PaymentTrade.select()
        .where(PaymentTrade.order == order_id)
        .order_by(PaymentTrade.id, ascending=False)
        .first()
    )
    return _record(row) if row is not None else None


def _record(row: dict) -> TradeRecord:
    record = TradeRecord(**row)
    record.method, record.status = TradeMethod(record.method), TradeStatus(record.status)
    return record


# Payment codes (micropay) ------------------------------------------------------------------------------


async def micropay(
    trade_id: int,
    *,
    out_trade_no: str,
    amount_fen: int,
    auth_code: str,
    store_ref: str,
    provider: PaymentProvider,
    policy: PaymentPolicy,
) -> OrderRecord | None:
    """Charge the shopper's payment code once; answers the order as paid when this call settled it."""
    try:
        payment = await provider.micropay(
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            auth_code=auth_code,
            description="checkout",
            store_ref=store_ref,
        )
    except NO_ANSWER as error:  # the call may or may not have reached WeChat Pay
        logger.warning("micropay call failed", extra={"error": type(error).__name__})
        payment = Payment(PayOutcome.unknown, error_code="NETWORK")
    if payment.outcome is PayOutcome.paid:
        return await _settle_as_found(trade_id, payment, policy=policy)
    if payment.outcome is PayOutcome.failed:
        await settle_unpaid(trade_id, TradeStatus.failed, failure=payment.error_code or "FAILED")
    else:  # unknown: ask again soon
        await _ASK_AGAIN.run(TradeStatus.paying, utcnow() + timedelta(seconds=policy.query_interval), trade_id)
    return None


_ASK_AGAIN = Prepared(
    lambda status, next_query_at, trade_id: PaymentTrade.update(
        {PaymentTrade.status: status, PaymentTrade.next_query_at: next_query_at}
    ).where((PaymentTrade.id == trade_id) & PaymentTrade.status.is_in(list(OPEN)))
)


# Mini-program payments (JSAPI) -----------------------------------------------------------------------


async def create_jsapi(
    trade_id: int,
    *,
    out_trade_no: str,
    amount_fen: int,
    payer_openid: str,
    description: str,
    expires_at: datetime,
    provider: PaymentProvider,
) -> dict[str, str]:
    """Ask WeChat Pay for the prepay order; answers the parameters for wx.requestPayment. Without them the
    payer cannot pay, so a trade WeChat Pay did not take ends failed at once (nothing is reserved any longer)."""
    now = utcnow()
    try:
        params = await provider.create_jsapi(
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            payer_openid=payer_openid,
            description=description[:127],
            expires_in_seconds=max(1, math.ceil((expires_at - now).total_seconds())),
        )
    except NOT_DONE as error:
        logger.warning("JSAPI order not created", extra={"trade_id": trade_id, "error": repr(error)})
        await settle_unpaid(trade_id, TradeStatus.failed, failure="PREPAY_FAILED")
        raise PaymentNotStarted(trade_id=trade_id) from None
    await _PREPAID.run(trade_id)
    return params


async def pay_params_again(
    trade: TradeRecord, *, payer_openid: str, description: str, provider: PaymentProvider
) -> dict[str, str] | None:
    """For a replayed request: the wx.requestPayment parameters of a trade still open, asked for again with the
    same out_trade_no and amount (WeChat Pay answers the same prepay order). None when the trade is no longer
    open or WeChat Pay does not answer now; unlike the first ask, that ends nothing."""
    now = utcnow()
    if trade.status not in OPEN or trade.expires_at <= now:
        return None
    try:
        return await provider.create_jsapi(
            out_trade_no=trade.out_trade_no,
            amount_fen=trade.amount_fen,
            payer_openid=payer_openid,
            description=description[:127],
            expires_in_seconds=max(1, math.ceil((trade.expires_at - now).total_seconds())),
        )
    except NOT_DONE as error:
        logger.warning("JSAPI parameters not given again", extra={"trade_id": trade.id, "error": repr(error)})
        return None


async def pay_params_while_paying(
    order: OrderRecord, *, description: str, provider: PaymentProvider, policy: PaymentPolicy
) -> dict[str, str] | None:
    """For a replayed request of a member's JSAPI order: its wx.requestPayment parameters again while it waits for
    its money (None otherwise, as `pay_params_again`)."""
    if order.status is not OrderStatus.paying or order.member is None:
        return None
    trade = await trade_of(order.id)
    if trade is None:
        return None
    openid = await members.payer_openid(order.member, policy.app_id)
    return await pay_params_again(trade, payer_openid=openid, description=description, provider=provider)


_PREPAID = Prepared(
    lambda trade_id: PaymentTrade.update({PaymentTrade.status: TradeStatus.paying}).where(
        (PaymentTrade.id == trade_id) & (PaymentTrade.status == TradeStatus.created)
    )
)


# Settling --------------------------------------------------------------------------------------------

_CLAIM_PAID = Prepared(
    lambda trade_id, now, transaction_id, openid: (
        PaymentTrade.update(
            {
                PaymentTrade.status: TradeStatus.paid,
                PaymentTrade.paid_at: now,
                PaymentTrade.transaction_id: transaction_id,
                PaymentTrade.payer_openid: openid,
                PaymentTrade.next_query_at: None,
            }
        )
        .where((PaymentTrade.id == trade_id) & PaymentTrade.status.is_in(list(OPEN)))
        .returning(PaymentTrade.order, PaymentTrade.amount_fen)
    )
)


async def settle_paid(
    trade_id: int, *, transaction_id: str, payer_openid: str | None, amount_fen: int | None, policy: PaymentPolicy
) -> OrderRecord | None:
    """The trade is paid and its order with it, in one transaction, exactly once; answers the order as paid,
    or None when the trade was not open (settled already by another request or worker, or ended unpaid)."""
    for attempt in range(SETTLE_ATTEMPTS):
        try:
            return await _settle_paid(
                trade_id,
                transaction_id=transaction_id,
                payer_openid=payer_openid or "",
                amount_fen=amount_fen,
                policy=policy,
            )
        except Exception as error:
            # The same payer enrolled by a concurrent payment at another till: again, finding that member. Or
            # PostgreSQL broke a deadlock with another transaction taking the same rows (points accounts of
            # several members, as a group succeeds) in another order: again, from the start.
            if not (is_unique_violation(error) or is_deadlock(error)) or attempt == SETTLE_ATTEMPTS - 1:
                raise
    return None


async def _settle_as_found(trade_id: int, found: Payment | TradeQuery, *, policy: PaymentPolicy) -> OrderRecord | None:
    """`settle_paid` with what WeChat Pay answered about the payment (a payment call, a query, a close)."""
    return await settle_paid(
        trade_id,
        transaction_id=found.transaction_id or "",
        payer_openid=found.payer_openid,
        amount_fen=found.amount_fen,
        policy=policy,
    )


async def _settle_paid(
    trade_id: int, *, transaction_id: str, payer_openid: str, amount_fen: int | None, policy: PaymentPolicy
) -> OrderRecord | None:
    now = utcnow()
    async with write_transaction():
        claimed = await _CLAIM_PAID.run(trade_id, now, transaction_id, payer_openid)
        if not claimed:
            return None
        order_id, paid_fen = claimed[0]["order"], claimed[0]["amount_fen"]
        if amount_fen is not None and amount_fen != paid_fen:
            logger.error("paid amount differs from the trade", extra={"trade_id": trade_id, "order_id": order_id})
        paid = await orders.record_paid(
            order_id, paid_fen=paid_fen, payer_openid=payer_openid, app_id=policy.app_id, now=now
        )
        if paid is None:  # an open trade's order waits for its money: only a bug gets here
            raise RuntimeError(f"trade {trade_id} was open but its order {order_id} was not waiting to be paid")
    # One line for both events: a till enrolment is "order paid, payer enrolled".
    logger.info(
        "order paid, payer enrolled" if paid.member_enrolled else "order paid",
        extra={"order_id": order_id, "member_id": paid.member, "member_enrolled": bool(paid.member_enrolled)},
    )
    return paid


_CLAIM_UNPAID = Prepared(
    lambda trade_id, status, failure: (
        PaymentTrade.update(
            {PaymentTrade.status: status, PaymentTrade.failure: failure, PaymentTrade.next_query_at: None}
        )
        .where((PaymentTrade.id == trade_id) & PaymentTrade.status.is_in(list(OPEN)))
        .returning(PaymentTrade.order)
    )
)


async def settle_unpaid(trade_id: int, status: TradeStatus, *, failure: str, close_owed: bool = False) -> bool:
    """The payment did not happen: the trade ends, and its order with it (its handlers give back what the
    order held). `close_owed`: the provider is still to confirm the close, so the trade stays due."""
    if status not in ENDED_UNPAID:
        raise ValueError(f"a trade ends unpaid as failed, closed or reversed, not {status}")
    now = utcnow()
    async with write_transaction():
        claimed = await _CLAIM_UNPAID.run(trade_id, status, failure[:32])
        if claimed:
            if close_owed:
                await PaymentTrade.update({PaymentTrade.next_query_at: now}).where(PaymentTrade.id == trade_id)
            order_status = OrderStatus.failed if status is TradeStatus.failed else OrderStatus.cancelled
            await orders.record_closed(claimed[0]["order"], status=order_status, failure_reason=failure, now=now)
    if claimed:
        logger.info("order not paid", extra={"order_id": claimed[0]["order"], "status": status.value})
    return bool(claimed)


# Steps: queries, reversals and closes, by whichever request or worker claims them ------------------------


async def advance(trade_id: int, *, provider: PaymentProvider, policy: PaymentPolicy) -> None:
    """One step for a trade whose outcome is unknown: a query, then (past its deadline) a reversal or a close."""
    now = utcnow()
    claimed = (
        await PaymentTrade.update({PaymentTrade.next_query_at: now + timedelta(seconds=policy.query_interval)})
        .where(
            (PaymentTrade.id == trade_id) & PaymentTrade.status.is_in(list(OPEN)) & (PaymentTrade.next_query_at <= now)
        )
        .returning(PaymentTrade.out_trade_no, PaymentTrade.expires_at, PaymentTrade.method, PaymentTrade.created_at)
    )
    if not claimed:
        return
    method = TradeMethod(claimed[0]["method"])
    if method is TradeMethod.jsapi:  # asked about less and less often: the payer may take minutes
        upcoming = _next_jsapi_query(
            created_at=claimed[0]["created_at"], expires_at=claimed[0]["expires_at"], now=now, policy=policy
        )
        await PaymentTrade.update({PaymentTrade.next_query_at: upcoming}).where(
            (PaymentTrade.id == trade_id) & PaymentTrade.status.is_in(list(OPEN))
        )
    await _step(
        trade_id,
        claimed[0]["out_trade_no"],
        method,
        ends=now >= claimed[0]["expires_at"],
        provider=provider,
        policy=policy,
    )


async def conclude(trade_id: int, *, provider: PaymentProvider, policy: PaymentPolicy, reason: str = "EXPIRED") -> bool:
    """End a trade now, whatever its deadline (a group-buy group's deadline has come): a query first, so a
    payment that happened wins; answers whether the trade has ended (False: the provider did not answer)."""
    trade = await find_trade(trade_id)
    if trade is None:
        return True
    if trade.status in OPEN:
        await _step(
            trade_id, trade.out_trade_no, trade.method, ends=True, provider=provider, policy=policy, reason=reason
        )
        trade = await find_trade(trade_id)
    return trade is not None and trade.status not in OPEN


async def _step(
    trade_id: int,
    out_trade_no: str,
    method: TradeMethod,
    *,
    ends: bool,
    provider: PaymentProvider,
    policy: PaymentPolicy,
    reason: str = "EXPIRED",
) -> None:
    try:
        answer = await provider.query(out_trade_no)
    except NOT_DONE:
        return  # asked again at the next step
    if answer.paid:  # even at the last moment, a payment wins
        await _settle_as_found(trade_id, answer, policy=policy)
    elif answer.state is TradeState.payerror:
        await settle_unpaid(trade_id, TradeStatus.failed, failure="PAYERROR")
    elif answer.state is TradeState.revoked:
        await settle_unpaid(trade_id, TradeStatus.reversed, failure=answer.state.value)
    elif answer.state is TradeState.closed:
        await settle_unpaid(trade_id, TradeStatus.closed, failure=answer.state.value)
    elif ends:  # a query has just said it is not paid: only now may it be reversed or closed
        if method is TradeMethod.jsapi:
            await _close(trade_id, out_trade_no, reason=reason, provider=provider, policy=policy)
        else:
            await _reverse(trade_id, out_trade_no, provider=provider)


async def _close(
    trade_id: int, out_trade_no: str, *, reason: str, provider: PaymentProvider, policy: PaymentPolicy
) -> None:
    """Past its deadline: the trade ends here first, so money arriving from now on goes back; then at the provider."""
    await settle_unpaid(trade_id, TradeStatus.closed, failure=reason, close_owed=True)
    await _close_at_provider(trade_id, out_trade_no, provider=provider, policy=policy)


async def _close_at_provider(
    trade_id: int, out_trade_no: str, *, provider: PaymentProvider, policy: PaymentPolicy
) -> None:
    """Close the trade at WeChat Pay; money it took first goes back. Until WeChat Pay has answered, the closed
    trade stays due, so a payment whose notification is lost is still found and refunded."""
    try:
        paid = await close_or_find_payment(provider, out_trade_no)
        if paid is not None:  # the shopper paid just as the order closed
            await refunds.refund_late_payment(
                trade_id, transaction_id=paid.transaction_id or "", provider=provider, policy=policy
            )
    except NOT_DONE as error:
        logger.warning("closing at the provider failed", extra={"trade_id": trade_id, "error": repr(error)})
        await PaymentTrade.update(
            {PaymentTrade.next_query_at: utcnow() + timedelta(seconds=policy.jsapi_query_interval)}
        ).where((PaymentTrade.id == trade_id) & (PaymentTrade.status == TradeStatus.closed))
        return
    await PaymentTrade.update({PaymentTrade.next_query_at: None}).where(PaymentTrade.id == trade_id)


async def _close_again(trade_id: int, *, provider: PaymentProvider, policy: PaymentPolicy, now: datetime) -> None:
    claimed = (
        await PaymentTrade.update({PaymentTrade.next_query_at: now + timedelta(seconds=policy.jsapi_query_interval)})
        .where(
            (PaymentTrade.id == trade_id)
            & (PaymentTrade.status == TradeStatus.closed)
            & (PaymentTrade.next_query_at <= now)
        )
        .returning(PaymentTrade.out_trade_no)
    )
    if claimed:
        await _close_at_provider(trade_id, claimed[0]["out_trade_no"], provider=provider, policy=policy)


async def _reverse(trade_id: int, out_trade_no: str, *, provider: PaymentProvider) -> None:
    """Reverse the payment at WeChat Pay, recalled as it asks; without a final answer the next step queries
    and reverses again."""
    for _ in range(MAX_RECALLS):
        try:
            reversal = await provider.reverse(out_trade_no)
        except NO_ANSWER:
            return
        if reversal.done:
            if not await settle_unpaid(trade_id, TradeStatus.reversed, failure="REVERSED"):
                await refunds.record_reversal(trade_id)  # paid meanwhile: the reversal gave the money back
            return
        if not reversal.recall:
            return


async def cancel(trade_id: int, *, provider: PaymentProvider, policy: PaymentPolicy) -> None:
    """Staff give up on a payment under way: asked once more, then reversed (a payment code) or closed (a
    mini-program trade), unless it was paid after all."""
    trade = await find_trade(trade_id)
    if trade is None or trade.status in ENDED_UNPAID:
        return
    if trade.status is TradeStatus.paid:
        raise NotCancellable(trade_id=trade_id)
    try:
        answer = await provider.query(trade.out_trade_no)
    except NOT_DONE:
        raise ProviderUnreachable(trade_id=trade_id) from None  # the sweeper carries on meanwhile
    if answer.paid:
        await _settle_as_found(trade_id, answer, policy=policy)
        raise NotCancellable("The shopper had already paid.", trade_id=trade_id)
    if trade.method is TradeMethod.jsapi:
        await _close(trade_id, trade.out_trade_no, reason="CANCELLED", provider=provider, policy=policy)
    else:
        await _reverse(trade_id, trade.out_trade_no, provider=provider)


async def give_back(trade_id: int, *, reason: str, provider: PaymentProvider, policy: PaymentPolicy) -> None:
    """The payer gives an unpaid mini-program order back: closed at WeChat Pay first, so that no money can
    land on it; then here. Refused, changing nothing, when WeChat Pay does not answer or the order is paid."""
    trade = await find_trade(trade_id)
    if trade is None or trade.status in ENDED_UNPAID:
        return
    if trade.status is TradeStatus.paid or trade.method is not TradeMethod.jsapi:
        raise NotCancellable(trade_id=trade_id)
    try:
        paid = await close_or_find_payment(provider, trade.out_trade_no)
    except NOT_DONE:
        raise ProviderUnreachable(trade_id=trade_id) from None
    if paid is not None:
        await _settle_as_found(trade_id, paid, policy=policy)
        raise AlreadyPaid(trade_id=trade_id)
    await settle_unpaid(trade_id, TradeStatus.closed, failure=reason)


async def advance_due(*, provider: PaymentProvider, policy: PaymentPolicy, now: datetime | None = None) -> int:
    """The sweeper's part: every trade whose next step is due gets it; answers how many."""
    now = now or utcnow()
    due = (
        await PaymentTrade.select(PaymentTrade.id, PaymentTrade.status)
        .where(PaymentTrade.status.is_in([*OPEN, TradeStatus.closed]) & (PaymentTrade.next_query_at <= now))
        .order_by(PaymentTrade.next_query_at)
        .limit(200)
    )
    for row in due:
        if row["status"] == TradeStatus.closed:  # a close WeChat Pay has not confirmed yet
            await _close_again(row["id"], provider=provider, policy=policy, now=now)
        else:
            await advance(row["id"], provider=provider, policy=policy)
    return len(due)


@dataclass(frozen=True, slots=True)
class Pending:
    """Money whose outcome is not known yet, and how late the sweeper is with it (for the metrics)."""

    trades_unknown: int
    refunds_unknown: int
    oldest_due: datetime | None  # the earliest next step that is due and not taken yet


async def pending(now: datetime | None = None) -> Pending:
    """Read through the `next_query_at` indexes: only rows with a next step are looked at."""
    now = now or utcnow()
    trades = await PaymentTrade.count().where(
        PaymentTrade.next_query_at.is_not_null() & PaymentTrade.status.is_in(list(OPEN))
    )
    refunds = await PaymentRefund.count().where(
        PaymentRefund.next_query_at.is_not_null() & (PaymentRefund.status == RefundStatus.processing)
    )
    due = [
        await table.select(table.next_query_at).where(table.next_query_at <= now).order_by(table.next_query_at).first()
        for table in (PaymentTrade, PaymentRefund)
    ]
    oldest = min((row["next_query_at"] for row in due if row is not None), default=None)
    return Pending(trades_unknown=trades, refunds_unknown=refunds, oldest_due=oldest)


# Notifications ---------------------------------------------------------------------------------------


async def accept_notice(
    notice: TransactionNotice | RefundNotice, *, provider: PaymentProvider, policy: PaymentPolicy
) -> bool:
    """A verified notification: its trade or refund, found by its number. Answers False when we have none.

    A trade is paid at most once; a replay changes nothing; money for a trade that had already ended
    unpaid goes back in full.
    """
    if isinstance(notice, RefundNotice):
        return await refunds.accept_refund_notice(notice, provider=provider, policy=policy)
    trade = await _TRADE_BY_NUMBER.run(notice.out_trade_no)
    if trade is None:
        return False
    check_transaction_notice(notice, provider=provider, amount_fen=trade["amount_fen"], trade_id=trade["id"])
    if notice.trade_state != TradeState.success.value:
        return True
    settled = await settle_paid(
        trade["id"],
        transaction_id=notice.transaction_id,
        payer_openid=notice.payer_openid or None,
        amount_fen=notice.amount_fen,
        policy=policy,
    )
    if settled is None and (now := await find_trade(trade["id"])) is not None and now.status in ENDED_UNPAID:
        await refunds.refund_late_payment(
            trade["id"], transaction_id=notice.transaction_id, provider=provider, policy=policy
        )
    return True
