"""WeChat Pay APIv3 as a payment provider: signed requests, verified answers, the same port as the sandbox.

Every answer is verified over its raw body with the platform key its `Wechatpay-Serial`
names before a byte of it is believed; an answer that does not verify is treated like a
network failure (the outcome is unknown, so the state machine asks again), never as a
refusal and never as a payment.
"""

import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from backend.payments.notices import read_notice
from backend.payments.provider import (
    CloseOutcome,
    Payment,
    PaymentProvider,
    PayOutcome,
    ProviderError,
    RefundNotice,
    RefundResult,
    RefundState,
    Reversal,
    TradeQuery,
    TradeState,
    TransactionNotice,
)
from backend.payments.wechatpay_protocol import (
    VerificationFailed,
    authorization,
    jsapi_pay_params,
    verify_signed,
)

logger = logging.getLogger(__name__)

# codepay answers that leave the outcome open: ask again with a query.
_PAY_UNKNOWN = {"USERPAYING", "SYSTEM_ERROR", "SYSTEMERROR", "BANK_ERROR", "BANKERROR"}
# reverse answers that ask to be asked again.
_RECALL = {"USERPAYING", "SYSTEM_ERROR", "SYSTEMERROR", "BANK_ERROR", "BANKERROR", "FREQUENCY_LIMITED"}


class AnswerNotVerified(httpx.HTTPError):
    """WeChat Pay's answer (or something pretending to be it) did not verify: as good as no answer."""


class AskAgainLater(httpx.HTTPError):
    """WeChat Pay answered a system error or a rate limit: the request may be repeated as it was."""


class WeChatPayProvider(PaymentProvider):
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        mchid: str,
        appid: str,
        serial_no: str,
        private_key: RSAPrivateKey,
        platform_keys: Mapping[str, RSAPublicKey],
        api_v3_key: bytes,
        notify_url: str,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http, self._base = http, base_url.rstrip("/")
        self.mchid, self.appid = mchid, appid
        self._serial_no, self._private_key = serial_no, private_key
        self._platform_keys, self._api_v3_key = dict(platform_keys), api_v3_key
        self._notify_url, self._timeout, self._clock = notify_url, timeout, clock

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> tuple[int, dict]:
        """One signed request; answers the status and the verified JSON body ({} when empty)."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        now = int(self._clock())
        headers = {
            "Authorization": authorization(
                mchid=self.mchid,
                serial_no=self._serial_no,
                private_key=self._private_key,
                method=method,
                url=path,
                body=body,
                timestamp=now,
                nonce=secrets.token_hex(16),
            ),
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        response = await self._http.request(
            method, self._base + path, content=body, headers=headers, timeout=self._timeout
        )
        try:
            verify_signed(response.headers, response.content, self._platform_keys, now=int(self._clock()))
        except VerificationFailed as error:
            logger.error(
                "WeChat Pay answer not verified",
                extra={"path": path.split("?")[0], "status": response.status_code, "reason": error.reason},
            )
            raise AnswerNotVerified(f"answer not verified: {error.reason}") from None
        try:
            answer = json.loads(response.content) if response.content else {}
        except ValueError:
            raise AnswerNotVerified("answer is not JSON") from None
        return response.status_code, answer if isinstance(answer, dict) else {}

    @staticmethod
    def _refusal(status: int, answer: dict) -> ProviderError:
        return ProviderError(str(answer.get("code") or f"HTTP_{status}"), str(answer.get("message") or ""))

    def _trade_path(self, out_trade_no: str) -> str:
        return f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}"

    async def micropay(
        self, *, out_trade_no: str, amount_fen: int, auth_code: str, description: str, store_ref: str = ""
    ) -> Payment:
        status, answer = await self._call(
            "POST",
            "/v3/pay/transactions/codepay",
            {
                "appid": self.appid,
                "mchid": self.mchid,
                "description": description[:127],
                "out_trade_no": out_trade_no,
                "payer": {"auth_code": auth_code},
                "amount": {"total": amount_fen, "currency": "CNY"},
                "scene_info": {"store_info": {"out_id": store_ref or "0"}},
            },
        )
        if status == 200 and answer.get("trade_state") == "SUCCESS":
            return Payment(
                PayOutcome.paid,
                transaction_id=str(answer.get("transaction_id") or ""),
                payer_openid=(answer.get("payer") or {}).get("openid"),
                amount_fen=_total(answer),
            )
        code = str(answer.get("code") or answer.get("trade_state") or f"HTTP_{status}")
        if status >= 500 or status == 202 or code in _PAY_UNKNOWN:
            return Payment(PayOutcome.unknown, error_code=code)
        return Payment(PayOutcome.failed, error_code=code)

    async def query(self, out_trade_no: str) -> TradeQuery:
        status, answer = await self._call("GET", f"{self._trade_path(out_trade_no)}?mchid={self.mchid}")
        if status == 404 or answer.get("code") == "ORDER_NOT_EXIST":
            return TradeQuery(TradeState.notpay)  # the payment call never arrived: nothing was taken
        if status != 200:
            raise self._refusal(status, answer)
        try:
            state = TradeState(answer.get("trade_state"))
        except ValueError:
            raise ProviderError("UNKNOWN_TRADE_STATE", str(answer.get("trade_state"))) from None
        return TradeQuery(
            state,
            transaction_id=answer.get("transaction_id"),
            payer_openid=(answer.get("payer") or {}).get("openid"),
            amount_fen=_total(answer),
        )

    async def reverse(self, out_trade_no: str) -> Reversal:
        status, answer = await self._call(
            "POST", f"{self._trade_path(out_trade_no)}/reverse", {"appid": self.appid, "mchid": self.mchid}
        )
        if status in (200, 204):
            return Reversal(done=True, recall=False)
        code = str(answer.get("code") or "")
        if status >= 500 or code in _RECALL:
            return Reversal(done=False, recall=True)
        if code == "ORDER_NOT_EXIST":
            return Reversal(done=True, recall=False)  # nothing was taken
        logger.error("reverse refused", extra={"out_trade_no": out_trade_no, "code": code})
        return Reversal(done=False, recall=False)

    async def close(self, out_trade_no: str) -> CloseOutcome:
        status, answer = await self._call("POST", f"{self._trade_path(out_trade_no)}/close", {"mchid": self.mchid})
        if status in (200, 204):
            return CloseOutcome.closed
        # ORDERPAID and its kin: ask what the trade is, rather than trust an error code's spelling.
        trade = await self.query(out_trade_no)
        if trade.paid:
            return CloseOutcome.already_paid
        if trade.state in (TradeState.closed, TradeState.revoked):
            return CloseOutcome.closed
        raise self._refusal(status, answer)

    async def create_jsapi(
        self, *, out_trade_no: str, amount_fen: int, payer_openid: str, description: str, expires_in_seconds: int
    ) -> dict[str, str]:
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expires_in_seconds)
        status, answer = await self._call(
            "POST",
            "/v3/pay/transactions/jsapi",
            {
                "appid": self.appid,
                "mchid": self.mchid,
                "description": description[:127],
                "out_trade_no": out_trade_no,
                "time_expire": expires.isoformat(),
                "notify_url": self._notify_url,
                "amount": {"total": amount_fen, "currency": "CNY"},
                "payer": {"openid": payer_openid},
            },
        )
        if status != 200 or not answer.get("prepay_id"):
            raise self._refusal(status, answer)
        return jsapi_pay_params(
            self._private_key,
            app_id=self.appid,
            prepay_id=str(answer["prepay_id"]),
            timestamp=int(self._clock()),
            nonce=secrets.token_hex(16),
        )

    async def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> RefundResult:
        payload: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "notify_url": self._notify_url,
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        if reason:
            payload["reason"] = reason[:80]
        status, answer = await self._call("POST", "/v3/refund/domestic/refunds", payload)
        if status >= 500 or answer.get("code") in ("SYSTEM_ERROR", "FREQUENCY_LIMITED"):
            raise AskAgainLater(f"refund answered {status} {answer.get('code')}")
        if status != 200:
            raise self._refusal(status, answer)
        return _refund_result(answer)

    async def query_refund(self, out_refund_no: str) -> RefundResult:
        status, answer = await self._call("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}")
        if status != 200:
            raise self._refusal(status, answer)
        return _refund_result(answer)

    def parse_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: int
    ) -> TransactionNotice | RefundNotice:
        return read_notice(headers, body, platform_keys=self._platform_keys, api_v3_key=self._api_v3_key, now=now)


def _total(answer: dict) -> int | None:
    total = (answer.get("amount") or {}).get("total")
    return total if type(total) is int else None


def _refund_result(answer: dict) -> RefundResult:
    try:
        state = RefundState(answer.get("status"))
    except ValueError:
        raise ProviderError("UNKNOWN_REFUND_STATUS", str(answer.get("status"))) from None
    return RefundResult(state=state, refund_id=str(answer.get("refund_id") or ""))
