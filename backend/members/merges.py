"""What a member merge moves: every domain that keeps rows per member registers here how it moves them.

`members.service.merge_members` runs the handlers inside the merge's transaction, in the order of their
`step` (points first, so that anything undone afterwards through the ledger finds the survivor holding
every lot), and records what they moved in the merge's audit row.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Moved:
    points: int = 0
    debt: int = 0
    lots: int = 0
    orders: int = 0
    seats: int = 0  # group-buy seats

    def __add__(self, other: "Moved") -> "Moved":
        return Moved(**{field.name: getattr(self, field.name) + getattr(other, field.name) for field in fields(self)})


Handler = Callable[[int, int, datetime], Awaitable[Moved | None]]  # (survivor_id, merged_id, now)

POINTS, ORDERS, CHANNELS, REFERRALS, TAGS, STANDING, COUPONS = 0, 10, 20, 30, 40, 45, 50
_handlers: list[tuple[int, Handler]] = []


def on_merge(step: int) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _handlers.append((step, handler))
        _handlers.sort(key=lambda entry: entry[0])
        return handler

    return register


async def move_everything(survivor_id: int, merged_id: int, now: datetime) -> Moved:
    """Inside the merge's transaction: every registered handler, in step order; answers what moved."""
    moved = Moved()
    for _, handler in _handlers:
        result = await handler(survivor_id, merged_id, now)
        if result is not None:
            moved = moved + result
    return moved
