"""Members with a history: rows as the till and the mall leave them, paid when a test says."""

import itertools
from datetime import datetime, timedelta

from backend.core.clock import utcnow
from backend.members.tables import IdentityKind, Member, MemberIdentity
from backend.orders.tables import Order, OrderKind, OrderStatus

ADMIN = "/api/v1/admin"
_numbers = itertools.count(1)


async def a_member(
    store_id: int | None, *, via: str = "cashier", nickname: str = "", phone: str | None = None, created_at=None
) -> int:
    rows = await Member.insert(
        Member(nickname=nickname, enrolled_store=store_id, enrolled_via=via, created_at=created_at or utcnow())
    )
    member_id = rows[0]["id"]
    if phone is not None:
        await MemberIdentity.insert(MemberIdentity(member=member_id, kind=IdentityKind.phone, value=phone))
    return member_id


async def an_order(
    member_id: int | None,
    store_id: int,
    paid_fen: int,
    *,
    days_ago: float = 0,
    refunded_fen: int = 0,
    paid: bool = True,
    now: datetime | None = None,
) -> int:
    """A till order of `paid_fen`, paid `days_ago` (or never paid: failed), part of it refunded."""
    at = (now or utcnow()) - timedelta(days=days_ago)
    number = next(_numbers)
    if not paid:
        status = OrderStatus.failed
    elif refunded_fen == paid_fen:
        status = OrderStatus.refunded
    elif refunded_fen:
        status = OrderStatus.partially_refunded
    else:
        status = OrderStatus.paid
    rows = await Order.insert(
        Order(
            kind=OrderKind.till,
            store=store_id,
            member=member_id,
            status=status,
            amount_fen=paid_fen,
            payable_fen=paid_fen,
            paid_fen=paid_fen if paid else 0,
            refunded_fen=refunded_fen,
            out_trade_no=f"SEG{number:020d}",
            pay_by=at + timedelta(minutes=5),
            idempotency_key=f"seg-{number}",
            created_at=at,
            paid_at=at if paid else None,
        )
    )
    return rows[0]["id"]
