"""The sandbox as a payment provider: the port, answered by the sandbox's WeChat Pay side."""

import secrets
import time
from collections.abc import Mapping

from backend.payments.notices import read_notice
from backend.payments.provider import (
    CloseOutcome,
    Payment,
    PaymentProvider,
    PayOutcome,
    RefundNotice,
    RefundResult,
    Reversal,
    TradeQuery,
    TradeState,
    TransactionNotice,
)
from backend.payments.wechatpay_protocol import jsapi_pay_params
from backend.sandbox import service as wechat
from backend.sandbox.keys import SandboxKeys


class SandboxProvider(PaymentProvider):
    def __init__(self, keys: SandboxKeys, *, appid: str) -> None:
        self.keys, self.mchid, self.appid = keys, keys.mchid, appid

    async def micropay(
        self, *, out_trade_no: str, amount_fen: int, auth_code: str, description: str, store_ref: str = ""
    ) -> Payment:
        answer = await wechat.pay_with_code(out_trade_no=out_trade_no, amount_fen=amount_fen, auth_code=auth_code)
        trade = answer.trade or {}
        if answer.state == "SUCCESS":
            return Payment(
                PayOutcome.paid,
                transaction_id=trade["transaction_id"],
                payer_openid=trade["openid"],
                amount_fen=trade["amount_fen"],
            )
        if answer.error_code in ("USERPAYING", "SYSTEMERROR", "BANKERROR"):
            return Payment(PayOutcome.unknown, error_code=answer.error_code)
        return Payment(PayOutcome.failed, error_code=answer.error_code)

    async def query(self, out_trade_no: str) -> TradeQuery:
        trade = await wechat.query_trade(out_trade_no)
        if trade is None:
            return TradeQuery(TradeState.notpay)
        return TradeQuery(
            TradeState(trade["state"]),
            transaction_id=trade["transaction_id"],
            payer_openid=trade["openid"],
            amount_fen=trade["amount_fen"],
        )

    async def reverse(self, out_trade_no: str) -> Reversal:
        done, recall = await wechat.reverse_trade(out_trade_no)
        return Reversal(done=done, recall=recall)

    async def close(self, out_trade_no: str) -> CloseOutcome:
        return await wechat.close_trade(out_trade_no)

    async def create_jsapi(
        self, *, out_trade_no: str, amount_fen: int, payer_openid: str, description: str, expires_in_seconds: int
    ) -> dict[str, str]:
        prepay_id = await wechat.create_prepay(
            out_trade_no=out_trade_no, amount_fen=amount_fen, openid=payer_openid, expires_in_seconds=expires_in_seconds
        )
        return jsapi_pay_params(
            self.keys.merchant_key,
            app_id=self.appid,
            prepay_id=prepay_id,
            timestamp=int(time.time()),
            nonce=secrets.token_hex(16),
        )

    async def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> RefundResult:
        return await wechat.refund_trade(
            out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=refund_fen, total_fen=total_fen
        )

    async def query_refund(self, out_refund_no: str) -> RefundResult:
        return await wechat.query_refund(out_refund_no)

    def parse_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: int
    ) -> TransactionNotice | RefundNotice:
        return read_notice(
            headers, body, platform_keys=self.keys.platform_keys, api_v3_key=self.keys.api_v3_key, now=now
        )
