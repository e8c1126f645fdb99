"""What an order's outcome sets off: channels and member effects register here, payments records outcomes.

Three outcomes: an order is **paid**, **closed** unpaid (failed, cancelled, expired), or has a refund
**refunded** (money back with the payer). `orders.service` records each inside the transaction that
moves the money's state, and runs every handler registered for it there, so that an effect happens
exactly when its outcome does, once, on both engines. Early handlers run first (a member's growth is
counted before anything earns at the tier it reaches), then those for one kind, then those for every
kind (a seat's group is counted before points are earned on it).

`payments/` and `orders/` import no channel and no member effect; those import this module and
register with a decorator at import of their package:

    @on_paid()
    async def earn_for_order(order: PaidOrder) -> Effects | None: ...
"""

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from backend.orders.tables import OrderKind, OrderStatus


@dataclass(frozen=True, slots=True)
class PaidOrder:
    id: int
    kind: OrderKind
    store_id: int
    member_id: int | None  # None only when neither the order nor the payment named anyone
    member_enrolled: bool  # this payment made the payer a member
    paid_fen: int
    points_redeemed: int
    scene: str
    paid_at: datetime


@dataclass(frozen=True, slots=True)
class ClosedOrder:
    id: int
    kind: OrderKind
    store_id: int
    member_id: int | None
    status: OrderStatus  # failed or cancelled
    failure_reason: str
    points_redeemed: int
    coupon_id: int | None
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class RefundedOrder:
    id: int
    kind: OrderKind
    store_id: int
    member_id: int | None
    refund_id: int
    amount_fen: int  # this refund's
    refunded_fen: int  # every refund of the order that has succeeded, this one included
    paid_fen: int
    late: bool  # money that arrived after the order had closed unpaid: no member effect ever ran on it
    coupon_id: int | None
    settled_at: datetime

    @property
    def fully(self) -> bool:
        return self.refunded_fen >= self.paid_fen


NO_MULTIPLIER = 100  # percent: points at the store's rate, neither more nor fewer


@dataclass(frozen=True, slots=True)
class Effects:
    """What a handler did to the order's totals, written to the order with the outcome."""

    points_earned: int = 0
    points_multiplier_percent: int = 100  # what they were earned at (NO_MULTIPLIER: as the store's rate gives)


OutcomeT = TypeVar("OutcomeT")
Handler = Callable[[OutcomeT], Awaitable[Effects | None]]


class Outcome(Generic[OutcomeT]):
    """One outcome's handlers, by order kind (None: every kind)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: dict[OrderKind | None, list[Handler[OutcomeT]]] = defaultdict(list)
        self._early: list[Handler[OutcomeT]] = []
        self._for_kind: dict[OrderKind, tuple[Handler[OutcomeT], ...]] = {}

    def __call__(
        self, kind: OrderKind | None = None, *, early: bool = False
    ) -> Callable[[Handler[OutcomeT]], Handler[OutcomeT]]:
        """Register a handler for orders of `kind` (None: every kind); `early`, for every kind, before all others."""
        if early and kind is not None:
            raise ValueError("an early handler is for every kind")

        def register(handler: Handler[OutcomeT]) -> Handler[OutcomeT]:
            (self._early if early else self._handlers[kind]).append(handler)
            self._for_kind.clear()
            return handler

        return register

    def unregister(self, handler: Handler[OutcomeT]) -> None:
        for handlers in (self._early, *self._handlers.values()):
            if handler in handlers:
                handlers.remove(handler)
        self._for_kind.clear()

    def handlers(self, kind: OrderKind) -> tuple[Handler[OutcomeT], ...]:
        found = self._for_kind.get(kind)
        if found is None:
            found = self._for_kind[kind] = (*self._early, *self._handlers[kind], *self._handlers[None])
        return found

    async def run(self, order: OutcomeT, kind: OrderKind) -> Effects:
        """Every handler for the order's kind, then those for every kind; answers their effects summed (the points
        multiplier: the highest)."""
        earned, multiplier = 0, NO_MULTIPLIER
        for handler in self.handlers(kind):
            effects = await handler(order)
            if effects is not None:
                earned += effects.points_earned
                multiplier = max(multiplier, effects.points_multiplier_percent)
        return Effects(points_earned=earned, points_multiplier_percent=multiplier)


on_paid: Outcome[PaidOrder] = Outcome("paid")
on_closed: Outcome[ClosedOrder] = Outcome("closed")
on_refunded: Outcome[RefundedOrder] = Outcome("refunded")
