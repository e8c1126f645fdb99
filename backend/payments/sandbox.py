"""The sandbox as a payment provider: the port, answered by the sandbox's WeChat Pay side."""

from backend.payments.provider import Payment, PayOutcome, Reversal, TradeQuery, TradeState
from backend.sandbox import service as wechat


class SandboxProvider:
    async def micropay(self, *, out_trade_no: str, amount_fen: int, auth_code: str, description: str) -> Payment:
        answer = await wechat.pay_with_code(out_trade_no=out_trade_no, amount_fen=amount_fen, auth_code=auth_code)
        trade = answer.trade or {}
        if answer.state == "SUCCESS":
            return Payment(PayOutcome.paid, transaction_id=trade["transaction_id"], payer_openid=trade["openid"],
                           amount_fen=trade["amount_fen"])
        if answer.error_code in ("USERPAYING", "SYSTEMERROR", "BANKERROR"):
            return Payment(PayOutcome.unknown, error_code=answer.error_code)
        return Payment(PayOutcome.failed, error_code=answer.error_code)

    async def query(self, out_trade_no: str) -> TradeQuery:
        trade = await wechat.query_trade(out_trade_no)
        if trade is None:
            return TradeQuery(TradeState.notpay)
        return TradeQuery(TradeState(trade["state"]), transaction_id=trade["transaction_id"],
                          payer_openid=trade["openid"], amount_fen=trade["amount_fen"])

    async def reverse(self, out_trade_no: str) -> Reversal:
        done, recall = await wechat.reverse_trade(out_trade_no)
        return Reversal(done=done, recall=recall)
