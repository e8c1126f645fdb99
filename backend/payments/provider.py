"""The payment provider port: what the till and the mini-program need from WeChat Pay (or its sandbox)."""

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable


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
    refund = "REFUND"


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


@dataclass(frozen=True, slots=True)
class Reversal:
    done: bool
    recall: bool  # the provider asks to be asked again


@runtime_checkable
class PaymentProvider(Protocol):
    async def micropay(self, *, out_trade_no: str, amount_fen: int, auth_code: str, description: str) -> Payment: ...
    async def query(self, out_trade_no: str) -> TradeQuery: ...
    async def reverse(self, out_trade_no: str) -> Reversal: ...
