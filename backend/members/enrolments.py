"""What a new member sets off: domains register handlers that run inside the enrolment's transaction (a welcome
coupon is in the member's hands the moment they are one, or they are not a member yet)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from backend.members.tables import EnrolmentChannel


@dataclass(frozen=True, slots=True)
class Enrolled:
    member_id: int
    channel: EnrolmentChannel
    store_id: int | None
    at: datetime


Handler = Callable[[Enrolled], Awaitable[None]]
_handlers: list[Handler] = []


def on_enrolled(handler: Handler) -> Handler:
    _handlers.append(handler)
    return handler


async def enrolled(event: Enrolled) -> None:
    """Inside the enrolment's transaction: every registered handler."""
    for handler in _handlers:
        await handler(event)
