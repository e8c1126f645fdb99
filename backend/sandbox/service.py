"""WeChat's side of the sandbox: the mini-program runtime's login codes, the wallet, and WeChat Pay's trades."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from backend.core.clock import utcnow
from backend.core.db import Prepared, insert_row, is_unique_violation, write_transaction
from backend.payments.provider import CloseOutcome, ProviderError, RefundResult, RefundState
from backend.sandbox.tables import (
    SandboxLoginCode,
    SandboxPaymentCode,
    SandboxPhoneCode,
    SandboxRefund,
    SandboxScenario,
    SandboxTrade,
    SandboxTradeType,
)

LOGIN_CODE_TTL_SECONDS = 300  # WeChat's wx.login codes live five minutes


def new_openid() -> str:
    # Real openids are 28 characters starting with "o"; sandbox ones look the same.
    return "o" + secrets.token_urlsafe(20)[:27]


@dataclass(frozen=True, slots=True)
class LoginCode:
    code: str
    openid: str
    unionid: str | None


async def issue_login_code(*, openid: str | None, unionid: str | None) -> LoginCode:
    issued = LoginCode(code=secrets.token_urlsafe(24), openid=openid or new_openid(), unionid=unionid)
    await insert_row(
        SandboxLoginCode,
        code=issued.code,
        openid=issued.openid,
        unionid=issued.unionid,
        expires_at=utcnow() + timedelta(seconds=LOGIN_CODE_TTL_SECONDS),
    )
    return issued


async def redeem_login_code(code: str) -> tuple[str, str | None] | None:
    """Spend a login code once; answer (openid, unionid), or None for an unknown, used or expired code."""
    rows = (
        await SandboxLoginCode.update({SandboxLoginCode.used_at: utcnow()})
        .where(
            (SandboxLoginCode.code == code)
            & SandboxLoginCode.used_at.is_null()
            & (SandboxLoginCode.expires_at > utcnow())
        )
        .returning(SandboxLoginCode.openid, SandboxLoginCode.unionid)
    )
    return (rows[0]["openid"], rows[0]["unionid"]) if rows else None


async def issue_phone_code(*, phone: str, country_code: str, app_id: str) -> str:
    code = secrets.token_urlsafe(24)
    await insert_row(
        SandboxPhoneCode,
        code=code,
        country_code=country_code,
        phone=phone,
        app_id=app_id,
        expires_at=utcnow() + timedelta(seconds=LOGIN_CODE_TTL_SECONDS),
    )
    return code


async def redeem_phone_code(code: str) -> dict[str, str] | None:
    """Spend a phone code once; answer the phone and the watermark app id, or None."""
    rows = (
        await SandboxPhoneCode.update({SandboxPhoneCode.used_at: utcnow()})
        .where(
            (SandboxPhoneCode.code == code)
            & SandboxPhoneCode.used_at.is_null()
            & (SandboxPhoneCode.expires_at > utcnow())
        )
        .returning(SandboxPhoneCode.country_code, SandboxPhoneCode.phone, SandboxPhoneCode.app_id)
    )
    return rows[0] if rows else None


# WeChat Pay's side of a payment-code payment --------------------------------------------

PAYMENT_CODE_TTL_SECONDS = 60  # a wallet's payment code refreshes every minute


async def issue_payment_code(*, openid: str, scenario: SandboxScenario) -> str:
    """An 18-digit code starting 13, as a WeChat wallet shows it, that pays once as `openid`."""
    for _ in range(5):
        code = "13" + _digits(16)
        try:
            await insert_row(
                SandboxPaymentCode,
                auth_code=code,
                openid=openid,
                scenario=scenario,
                expires_at=utcnow() + timedelta(seconds=PAYMENT_CODE_TTL_SECONDS),
            )
            return code
        except Exception as error:
            if not is_unique_violation(error):
                raise
    raise RuntimeError("could not find an unused payment code")


@dataclass(frozen=True, slots=True)
class TradeAnswer:
    state: str  # SUCCESS, USERPAYING, PAYERROR, REVOKED, ... as WeChat Pay says them
    error_code: str | None
    trade: dict | None


# How each scenario answers the payment call, and the state the trade is really in.
_FIRST_ANSWER = {
    SandboxScenario.success: ("SUCCESS", "SUCCESS", None),
    SandboxScenario.password_then_success: ("USERPAYING", "USERPAYING", "USERPAYING"),
    SandboxScenario.password_timeout: ("USERPAYING", "USERPAYING", "USERPAYING"),
    SandboxScenario.insufficient_funds: ("PAYERROR", "PAYERROR", "NOTENOUGH"),
    SandboxScenario.system_error_then_success: ("SUCCESS", "UNKNOWN", "SYSTEMERROR"),
}


def _digits(count: int) -> str:
    return str(secrets.randbelow(10**count)).zfill(count)


def _transaction_id() -> str:
    return "42" + _digits(26)


async def find_trade(out_trade_no: str) -> dict | None:
    return await SandboxTrade.select().where(SandboxTrade.out_trade_no == out_trade_no).first()


_SPEND_CODE = Prepared(
    lambda now, auth_code, also_now: (
        SandboxPaymentCode.update({SandboxPaymentCode.used_at: now})
        .where(
            (SandboxPaymentCode.auth_code == auth_code)
            & SandboxPaymentCode.used_at.is_null()
            & (SandboxPaymentCode.expires_at > also_now)
        )
        .returning(SandboxPaymentCode.openid, SandboxPaymentCode.scenario)
    )
)


async def pay_with_code(*, out_trade_no: str, amount_fen: int, auth_code: str) -> TradeAnswer:
    """micropay: charge the wallet behind a payment code, the way its scenario says."""
    try:
        async with write_transaction():
            now = utcnow()
            claimed = await _SPEND_CODE.run(now, auth_code, now)
            if claimed:
                scenario = SandboxScenario(claimed[0]["scenario"])
                real_state, answered_state, error_code = _FIRST_ANSWER[scenario]
                trade = {
                    "out_trade_no": out_trade_no,
                    "openid": claimed[0]["openid"],
                    "amount_fen": amount_fen,
                    "transaction_id": _transaction_id(),
                    "scenario": scenario,
                    "state": real_state,
                }
                await insert_row(SandboxTrade, **trade)
                return TradeAnswer(answered_state, error_code, trade)
    except Exception as error:
        if not is_unique_violation(error):
            raise  # else: the trade exists; the code's claim was rolled back with the insert
    existing = await find_trade(out_trade_no)
    if existing is not None:  # a second payment call for one trade: the trade as it stands
        return TradeAnswer(existing["state"], None if existing["state"] == "SUCCESS" else "OUT_TRADE_NO_USED", existing)
    return TradeAnswer("PAYERROR", "AUTHCODEEXPIRE", None)


async def query_trade(out_trade_no: str) -> dict | None:
    """The trade as WeChat Pay knows it now; a shopper asked for a password pays at the second query."""
    async with write_transaction():
        rows = (
            await SandboxTrade.update({SandboxTrade.queries: SandboxTrade.queries + 1})
            .where(SandboxTrade.out_trade_no == out_trade_no)
            .returning(SandboxTrade.queries, SandboxTrade.scenario)
        )
        if not rows:
            return None
        if rows[0]["scenario"] == SandboxScenario.password_then_success and rows[0]["queries"] >= 2:
            await SandboxTrade.update({SandboxTrade.state: "SUCCESS"}).where(
                (SandboxTrade.out_trade_no == out_trade_no) & (SandboxTrade.state == "USERPAYING")
            )
        return await find_trade(out_trade_no)


async def reverse_trade(out_trade_no: str) -> tuple[bool, bool]:
    """撤销: cancel the trade, refunding it if it was paid; answers (done, recall).

    A shopper stuck at the password screen (password_timeout) makes WeChat Pay ask for
    a recall once before the reversal goes through.
    """
    async with write_transaction():
        rows = (
            await SandboxTrade.update({SandboxTrade.reversals: SandboxTrade.reversals + 1})
            .where(SandboxTrade.out_trade_no == out_trade_no)
            .returning(SandboxTrade.reversals, SandboxTrade.scenario, SandboxTrade.state)
        )
        if not rows:
            return True, False  # nothing to reverse
        if rows[0]["scenario"] == SandboxScenario.password_timeout and rows[0]["reversals"] == 1:
            return False, True
        await SandboxTrade.update({SandboxTrade.state: "REVOKED"}).where(SandboxTrade.out_trade_no == out_trade_no)
        return True, False


# WeChat Pay's side of a mini-program (JSAPI) payment -----------------------------------------


async def create_prepay(*, out_trade_no: str, amount_fen: int, openid: str, expires_in_seconds: int) -> str:
    """The JSAPI order: answers its prepay_id; the same out_trade_no again answers the same prepay_id."""
    prepay_id = "wx" + secrets.token_hex(16)
    try:
        await insert_row(
            SandboxTrade,
            out_trade_no=out_trade_no,
            transaction_id=_transaction_id(),
            trade_type=SandboxTradeType.jsapi,
            prepay_id=prepay_id,
            openid=openid,
            amount_fen=amount_fen,
            scenario=SandboxScenario.success,
            state="NOTPAY",
            expires_at=utcnow() + timedelta(seconds=expires_in_seconds),
        )
    except Exception as error:
        if not is_unique_violation(error):
            raise
        existing = await find_trade(out_trade_no)
        if existing["amount_fen"] != amount_fen or existing["openid"] != openid:
            raise ProviderError("INVALID_REQUEST", "out_trade_no was used for another order") from None
        return existing["prepay_id"]
    return prepay_id


async def pay_prepay(out_trade_no: str) -> dict | None:
    """The shopper confirms wx.requestPayment: the trade is paid, unless it is closed, expired or paid already."""
    rows = (
        await SandboxTrade.update({SandboxTrade.state: "SUCCESS"})
        .where(
            (SandboxTrade.out_trade_no == out_trade_no)
            & (SandboxTrade.trade_type == SandboxTradeType.jsapi)
            & (SandboxTrade.state == "NOTPAY")
            & (SandboxTrade.expires_at > utcnow())
        )
        .returning(*SandboxTrade.all_columns())
    )
    return rows[0] if rows else None


async def close_trade(out_trade_no: str) -> CloseOutcome:
    closed = (
        await SandboxTrade.update({SandboxTrade.state: "CLOSED"})
        .where((SandboxTrade.out_trade_no == out_trade_no) & SandboxTrade.state.is_in(["NOTPAY", "USERPAYING"]))
        .returning(SandboxTrade.id)
    )
    if closed:
        return CloseOutcome.closed
    trade = await find_trade(out_trade_no)
    if trade is not None and trade["state"] in ("SUCCESS", "REFUND"):
        return CloseOutcome.already_paid
    return CloseOutcome.closed  # unknown, closed or revoked already: nothing can be paid


# Refunds --------------------------------------------------------------------------------------------


def _refund_result(row: dict) -> RefundResult:
    return RefundResult(state=RefundState(row["status"]), refund_id=row["refund_id"])


async def refund_trade(*, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int) -> RefundResult:
    """A refund, once per out_refund_no (the same number again answers the same refund), within the trade's money."""
    existing = await SandboxRefund.select().where(SandboxRefund.out_refund_no == out_refund_no).first()
    if existing is not None:
        if existing["out_trade_no"] != out_trade_no or existing["amount_fen"] != refund_fen:
            raise ProviderError("INVALID_REQUEST", "out_refund_no was used for another refund")
        return _refund_result(existing)
    try:
        async with write_transaction():
            taken = (
                await SandboxTrade.update(
                    {
                        SandboxTrade.refunded_fen: SandboxTrade.refunded_fen + refund_fen,
                        SandboxTrade.state: "REFUND",
                    }
                )
                .where(
                    (SandboxTrade.out_trade_no == out_trade_no)
                    & SandboxTrade.state.is_in(["SUCCESS", "REFUND"])
                    & (SandboxTrade.amount_fen == total_fen)
                    & (SandboxTrade.refunded_fen <= total_fen - refund_fen)
                )
                .returning(SandboxTrade.id)
            )
            if not taken:
                # The same refund may have been made a moment ago by a concurrent call: that one is the answer.
                raced = await SandboxRefund.select().where(SandboxRefund.out_refund_no == out_refund_no).first()
                if raced is not None and raced["out_trade_no"] == out_trade_no and raced["amount_fen"] == refund_fen:
                    return _refund_result(raced)
                raise ProviderError("INVALID_REQUEST", "the trade is not paid, or the refunds would exceed it")
            row = {
                "out_refund_no": out_refund_no,
                "refund_id": "50" + _digits(27),
                "out_trade_no": out_trade_no,
                "amount_fen": refund_fen,
                "status": RefundState.success.value,
            }
            await insert_row(SandboxRefund, **row)
    except Exception as error:
        if not is_unique_violation(error):
            raise
        return await refund_trade(
            out_trade_no=out_trade_no, out_refund_no=out_refund_no, refund_fen=refund_fen, total_fen=total_fen
        )
    return _refund_result(row)


async def query_refund(out_refund_no: str) -> RefundResult:
    row = await SandboxRefund.select().where(SandboxRefund.out_refund_no == out_refund_no).first()
    if row is None:
        raise ProviderError("RESOURCE_NOT_EXISTS", "no such refund")
    return _refund_result(row)
