"""Reading WeChat Pay notifications into the port's notices: the same for WeChat Pay and for the sandbox."""

import logging
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from backend.payments.errors import AmountMismatch, MerchantMismatch
from backend.payments.provider import PaymentProvider, RefundNotice, TransactionNotice
from backend.payments.wechatpay_protocol import VerificationFailed, open_notification


def read_notice(
    headers: Mapping[str, str], body: bytes, *, platform_keys: Mapping[str, RSAPublicKey], api_v3_key: bytes, now: int
) -> TransactionNotice | RefundNotice:
    notification = open_notification(headers, body, platform_keys=platform_keys, api_v3_key=api_v3_key, now=now)
    payload = notification.payload
    try:
        if notification.event_type.startswith("TRANSACTION."):
            return TransactionNotice(
                out_trade_no=str(payload["out_trade_no"]),
                transaction_id=str(payload["transaction_id"]),
                trade_state=str(payload["trade_state"]),
                amount_fen=_fen(payload["amount"]["total"]),
                payer_openid=str((payload.get("payer") or {}).get("openid") or ""),
                mchid=str(payload["mchid"]),
                appid=str(payload.get("appid") or ""),
            )
        if notification.event_type.startswith("REFUND."):
            return RefundNotice(
                out_trade_no=str(payload["out_trade_no"]),
                out_refund_no=str(payload["out_refund_no"]),
                refund_id=str(payload["refund_id"]),
                refund_status=str(payload["refund_status"]),
                refund_fen=_fen(payload["amount"]["refund"]),
                mchid=str(payload["mchid"]),
            )
    except (KeyError, TypeError):
        raise VerificationFailed("malformed_resource") from None
    raise VerificationFailed("unknown_event_type")


logger = logging.getLogger(__name__)


def check_transaction_notice(
    notice: TransactionNotice, *, provider: PaymentProvider, amount_fen: int, **context: object
) -> None:
    """A verified notification must also be about our merchant and app, and for exactly the amount we asked."""
    if notice.mchid != provider.mchid or (notice.appid and notice.appid != provider.appid):
        logger.error("notification for another merchant", extra={**context, "mchid": notice.mchid})
        raise MerchantMismatch(**context)
    if notice.amount_fen != amount_fen:
        logger.error(
            "notified amount differs", extra={**context, "notified": notice.amount_fen, "expected": amount_fen}
        )
        raise AmountMismatch(**context)


def _fen(value: object) -> int:
    if type(value) is not int:  # money is whole fen; a float or a string is not WeChat Pay's
        raise VerificationFailed("malformed_amount")
    return value
