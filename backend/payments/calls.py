"""Provider calls whose answers every domain reads the same way: closing an unpaid order, and refunds."""

import logging
from dataclasses import dataclass

from backend.payments.errors import MerchantMismatch
from backend.payments.provider import (
    NO_ANSWER,
    CloseOutcome,
    PaymentProvider,
    ProviderError,
    RefundNotice,
    RefundResult,
    RefundState,
    TradeQuery,
)

logger = logging.getLogger(__name__)


async def close_or_find_payment(provider: PaymentProvider, out_trade_no: str) -> TradeQuery | None:
    """Close an unpaid order at the provider; answers the payment when the shopper paid just before the
    close, else None. Raises what NOT_DONE names when the provider did not answer."""
    if await provider.close(out_trade_no) is not CloseOutcome.already_paid:
        return None
    trade = await provider.query(out_trade_no)
    return trade if trade.paid else None


@dataclass(frozen=True, slots=True)
class RefundAnswer:
    result: RefundResult | None = None  # what the provider says of the refund; None: no answer, ask again
    refused: str = ""  # a definite refusal's code: nothing is refunded under this number
    missing: bool = False  # the provider holds no refund under this number: the request never arrived


async def ask_refund(
    provider: PaymentProvider, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
) -> RefundAnswer:
    """Ask for the refund (again: the same out_refund_no is the same refund there)."""
    try:
        return RefundAnswer(
            await provider.refund(
                out_trade_no=out_trade_no,
                out_refund_no=out_refund_no,
                refund_fen=refund_fen,
                total_fen=total_fen,
                reason=reason,
            )
        )
    except ProviderError as error:
        # Refused; unless this very refund exists already (a concurrent call made it): then that is the answer.
        existing = await look_up_refund(provider, out_refund_no)
        return existing if existing.result is not None else RefundAnswer(refused=error.code[:32])
    except NO_ANSWER:
        return RefundAnswer()


async def look_up_refund(provider: PaymentProvider, out_refund_no: str) -> RefundAnswer:
    try:
        return RefundAnswer(await provider.query_refund(out_refund_no))
    except ProviderError as error:
        return RefundAnswer(missing=error.code == "RESOURCE_NOT_EXISTS")
    except NO_ANSWER:
        return RefundAnswer()


def refund_notice_result(notice: RefundNotice, *, provider: PaymentProvider, **context: object) -> RefundResult | None:
    """A verified refund notification as a result; None for a status the port does not know (logged)."""
    if notice.mchid != provider.mchid:
        raise MerchantMismatch(**context)
    try:
        return RefundResult(state=RefundState(notice.refund_status), refund_id=notice.refund_id)
    except ValueError:
        logger.error("refund notice with an unknown status", extra={**context, "status": notice.refund_status})
        return None
