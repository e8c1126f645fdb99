"""The payment provider port: what the till and the mini-program need from WeChat Pay (or its sandbox)."""

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import httpx


class PayOutcome(str, Enum):
    paid = "paid"
    unknown = "unknown"  # USERPAYING, SYSTEMERROR, BANKERROR, a timeout: ask again with `query`
    failed = "failed"  # definite: nothing was taken


class TradeState(str, Enum):
    success = "SUCCESS"
    userpaying = "USERPAYING"
    notpay = "NOTPAY"
    payerror = "PAYERROR"
    closed = "CLOSED"
    revoked = "REVOKED"
    refund = "REFUND"  # paid, then (partly) refunded


class RefundState(str, Enum):
    processing = "PROCESSING"
    success = "SUCCESS"
    closed = "CLOSED"
    abnormal = "ABNORMAL"


class CloseOutcome(str, Enum):
    closed = "closed"
    already_paid = "already_paid"  # ORDERPAID: the shopper paid before the close reached the provider


PAID_STATES = (TradeState.success, TradeState.refund)  # paid, then perhaps (partly) refunded


class ProviderError(Exception):
    """The provider answered, and the answer is a definite refusal (not a network failure)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


# The call may or may not have reached the provider (a timeout, a dropped connection, an answer that did
# not verify): nothing is known, so the same call or a query is made again later.
NO_ANSWER = (httpx.HTTPError, asyncio.TimeoutError)
# ...and with a definite refusal besides: the call did not do what was asked.
NOT_DONE = (*NO_ANSWER, ProviderError)


@dataclass(frozen=True, slots=True)
class Payment:
    outcome: PayOutcome
    transaction_id: str | None = None
    payer_openid: str | None = None
    amount_fen: int | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class TradeQuery:
    state: TradeState
    transaction_id: str | None = None
    payer_openid: str | None = None
    amount_fen: int | None = None

    @property
    def paid(self) -> bool:
        return self.state in PAID_STATES


@dataclass(frozen=True, slots=True)
class Reversal:
    done: bool
    recall: bool  # the provider asks to be asked again


@dataclass(frozen=True, slots=True)
class RefundResult:
    state: RefundState
    refund_id: str = ""


@dataclass(frozen=True, slots=True)
class TransactionNotice:
    """A verified, decrypted TRANSACTION.* notification."""

    out_trade_no: str
    transaction_id: str
    trade_state: str
    amount_fen: int
    payer_openid: str
    mchid: str
    appid: str


@dataclass(frozen=True, slots=True)
class RefundNotice:
    """A verified, decrypted REFUND.* notification."""

    out_trade_no: str
    out_refund_no: str
    refund_id: str
    refund_status: str
    refund_fen: int
    mchid: str


class PaymentProvider(ABC):
    """WeChat Pay or its sandbox. An ABC rather than a Protocol: it is injected into every payment request,
    and an isinstance check of an ABC is cheap."""

    mchid: str
    appid: str

    @abstractmethod
    async def micropay(
        self, *, out_trade_no: str, amount_fen: int, auth_code: str, description: str, store_ref: str = ""
    ) -> Payment:
        """Charge a payment code; `store_ref` names the store on the merchant's side (scene_info.store_info)."""

    @abstractmethod
    async def query(self, out_trade_no: str) -> TradeQuery: ...

    @abstractmethod
    async def reverse(self, out_trade_no: str) -> Reversal: ...

    @abstractmethod
    async def close(self, out_trade_no: str) -> CloseOutcome: ...

    @abstractmethod
    async def create_jsapi(
        self, *, out_trade_no: str, amount_fen: int, payer_openid: str, description: str, expires_in_seconds: int
    ) -> dict[str, str]:
        """A mini-program order: answers the signed parameters for wx.requestPayment."""

    @abstractmethod
    async def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> RefundResult: ...

    @abstractmethod
    async def query_refund(self, out_refund_no: str) -> RefundResult: ...

    @abstractmethod
    def parse_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: int
    ) -> TransactionNotice | RefundNotice:
        """Verify (raw body, platform key by serial, timestamp window), then decrypt; raises VerificationFailed."""
