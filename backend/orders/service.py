"""Orders: every sale, whatever its channel, and the recording of its outcomes.

Channels place orders (inside their own write transaction, beside their own rows); `payments/`
records what happens to the money by calling `record_paid`, `record_closed`, `reserve_refund`,
`release_refund` and `record_refunded` inside the transaction that moves a trade or a refund, and
each of those runs the handlers registered in `orders.outcomes`.

    paying -> paid -> partially_refunded -> refunded
    paying -> failed | cancelled (-> refunded, when money arrived after all and is back with the payer)

An order that ended unpaid has received nothing (`paid_fen` 0): money that lands on it afterwards is
owed back, not the order's, and is counted on it (received, and refunded) once it is back.
"""

import logging
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from typing import Any

from piccolo.columns import Column
from piccolo.query.functions.aggregate import Count, Sum
from piccolo.querystring import QueryString
from piccolo.table import Table

from backend.core import metrics
from backend.core.db import Prepared, get_engine, heavy_reads, insert_row
from backend.core.db import hold as db_hold
from backend.core.paging import ID_MAX
from backend.members import merges
from backend.members import service as members
from backend.members.wechat import WeChatSession
from backend.orders.outcomes import ClosedOrder, PaidOrder, RefundedOrder, on_closed, on_paid, on_refunded
from backend.orders.tables import Order, OrderKind, OrderLine, OrderStatus
from backend.stores.tables import StaffStore, Store

logger = logging.getLogger(__name__)

REFUNDABLE = (OrderStatus.paid, OrderStatus.partially_refunded)
UNPAID = (OrderStatus.failed, OrderStatus.cancelled)


@dataclass(slots=True)
class OrderRecord:
    """An order row as it is stored."""

    id: int
    kind: OrderKind
    store: int
    staff: int | None
    member: int | None
    status: OrderStatus
    amount_fen: int
    discount_fen: int
    payable_fen: int
    paid_fen: int
    refunded_fen: int
    points_redeemed: int
    points_earned: int
    coupon_id: int | None
    coupon_discount_fen: int
    member_enrolled: bool
    tier_discount_fen: int
    member_price_saved_fen: int
    points_multiplier_percent: int
    scene: str
    out_trade_no: str
    pay_by: datetime
    idempotency_key: str
    request_hash: str
    failure_reason: str
    created_at: datetime
    paid_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> "OrderRecord":
        record = cls(**row)
        record.kind, record.status = OrderKind(record.kind), OrderStatus(record.status)
        return record


@dataclass(frozen=True, slots=True)
class LineItem:
    title: str
    quantity: int
    unit_price_fen: int
    sku_id: int | None = None

    @property
    def amount_fen(self) -> int:
        return self.unit_price_fen * self.quantity


@dataclass(frozen=True, slots=True)
class LineRecord:
    id: int
    sku_id: int | None
    title: str
    quantity: int
    unit_price_fen: int
    amount_fen: int


# Placing -------------------------------------------------------------------------------------------


async def place_order(
    *,
    kind: OrderKind,
    store_id: int,
    member_id: int | None,
    amount_fen: int,
    out_trade_no: str,
    pay_by: datetime,
    idempotency_key: str,
    now: datetime,
    staff_id: int | None = None,
    discount_fen: int = 0,
    points_redeemed: int = 0,
    coupon_id: int | None = None,
    coupon_discount_fen: int = 0,
    tier_discount_fen: int = 0,
    member_price_saved_fen: int = 0,
    request_hash: str = "",
    scene: str = "",
    lines: tuple[LineItem, ...] = (),
) -> int:
    """Inside the caller's write transaction: a new order waiting for its money; answers its id. `discount_fen` is
    every discount (the tier's `tier_discount_fen`, the coupon's `coupon_discount_fen` and the points');
    `member_price_saved_fen` is what member prices saved on the lines, whose prices they are."""
    order_id = await insert_row(
        Order,
        kind=kind,
        store=store_id,
        staff=staff_id,
        member=member_id,
        status=OrderStatus.paying,
        amount_fen=amount_fen,
        discount_fen=discount_fen,
        payable_fen=amount_fen - discount_fen,
        points_redeemed=points_redeemed,
        coupon_id=coupon_id,
        coupon_discount_fen=coupon_discount_fen,
        tier_discount_fen=tier_discount_fen,
        member_price_saved_fen=member_price_saved_fen,
        scene=scene,
        out_trade_no=out_trade_no,
        pay_by=pay_by,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        created_at=now,
    )
    metrics.count_order(kind.value, "placed")
    for line in lines:
        await insert_row(
            OrderLine,
            order=order_id,
            sku_id=line.sku_id,
            title=line.title,
            quantity=line.quantity,
            unit_price_fen=line.unit_price_fen,
            amount_fen=line.amount_fen,
        )
    return order_id


# Reading -------------------------------------------------------------------------------------------

_ORDER = Prepared(lambda order_id: Order.select().where(Order.id == order_id).first())
_ORDER_BY_KEY = Prepared(
    lambda store_id, key: Order.select().where((Order.store == store_id) & (Order.idempotency_key == key)).first()
)


async def find_order(order_id: int) -> OrderRecord | None:
    row = await _ORDER.run(order_id)
    return OrderRecord.of(row) if row is not None else None


async def find_by_key(store_id: int, idempotency_key: str) -> OrderRecord | None:
    row = await _ORDER_BY_KEY.run(store_id, idempotency_key)
    return OrderRecord.of(row) if row is not None else None


_LINES = Prepared(
    lambda order_id: (
        OrderLine.select(
            OrderLine.id,
            OrderLine.sku_id,
            OrderLine.title,
            OrderLine.quantity,
            OrderLine.unit_price_fen,
            OrderLine.amount_fen,
        )
        .where(OrderLine.order == order_id)
        .order_by(OrderLine.id)
    )
)


async def order_lines(order_id: int) -> list[LineRecord]:
    return [LineRecord(**row) for row in await _LINES.run(order_id)]


async def has_paid_order(member_id: int) -> bool:
    """Whether the member has paid for any order of any kind (one refunded since included). Inside a paid
    handler, the order being paid is not counted yet: it is marked paid after its handlers."""
    return await Order.exists().where((Order.member == member_id) & Order.paid_at.is_not_null())


# What a channel shows beside an order: registered by the channel, joined into the one query that
# lists a member's orders.


@dataclass(slots=True)
class ChannelFields:
    """A channel's own words on an order, where it has them (a group-buy seat's status, group, pickup; a mall
    order's fulfilment and where it is delivered)."""

    status: str | None = None
    group_id: int | None = None
    pickup_code: str | None = None
    pickup_store_id: int | None = None
    fulfilment: str | None = None
    address_name: str | None = None
    address_phone: str | None = None
    address_text: str | None = None


_CHANNEL_FIELDS = frozenset(field.name for field in fields(ChannelFields))


@dataclass(frozen=True, slots=True)
class ChannelView:
    kind: OrderKind
    table: type[Table]
    order_column: Column  # the channel table's foreign key to the order
    columns: tuple[tuple[str, Column], ...]  # ChannelFields name -> the channel's column


_views: list[ChannelView] = []
_listing: dict[tuple[str, ...], str] = {}


def show_channel(kind: OrderKind, table: type[Table], *, order: Column, **columns: Column) -> None:
    """Register a channel's table whose columns an order of `kind` shows (ChannelFields by name)."""
    unknown = set(columns) - _CHANNEL_FIELDS
    if unknown:
        raise ValueError(f"ChannelFields has no {sorted(unknown)}")
    _views.append(ChannelView(kind, table, order, tuple(columns.items())))
    _listing.clear()


@dataclass(slots=True)
class OrderView:
    order: OrderRecord
    store_name: str
    channel: ChannelFields


_ORDER_COLUMNS = tuple(column._meta.db_column_name for column in Order.all_columns())


# What a listing may be narrowed by, each a condition on the order with one argument, in this order.
_FILTERS = {
    "member": 'o."member" = {}',
    "store": 'o."store" = {}',
    "staff_scope": f'o."store" IN (SELECT "store" FROM "{StaffStore._meta.tablename}" WHERE "staff" = {{}})',
    "kind": 'o."kind" = {}',
    "status": 'o."status" = {}',
    "since": 'o."created_at" >= {}',
    "until": 'o."created_at" < {}',
    "before": 'o."id" < {}',
}


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Which orders a listing shows; a field left None does not narrow it. `staff_scope` names a staff account:
    the orders of the stores it acts for."""

    member: int | None = None
    store: int | None = None
    staff_scope: int | None = None
    kind: OrderKind | None = None
    status: OrderStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None

    def used(self) -> tuple[tuple[str, Any], ...]:
        return tuple(
            (name, value.value if isinstance(value, Enum) else value)
            for name in _FILTERS
            if (value := getattr(self, name)) is not None
        )


def _listing_sql(names: tuple[str, ...]) -> str:
    sql = _listing.get(names)
    if sql is not None:
        return sql
    selected = [f'o."{name}"' for name in _ORDER_COLUMNS] + ['s."name" AS "store_name"']
    joins = [f'JOIN "{Store._meta.tablename}" s ON s."id" = o."store"']
    for index, view in enumerate(_views):
        alias = f"v{index}"
        joins.append(
            f'LEFT JOIN "{view.table._meta.tablename}" {alias} '
            f'ON {alias}."{view.order_column._meta.db_column_name}" = o."id"'
        )
        selected += [f'{alias}."{column._meta.db_column_name}" AS "{alias}_{name}"' for name, column in view.columns]
    where = " AND ".join(_FILTERS[name] for name in names) or "TRUE"
    sql = (
        f'SELECT {", ".join(selected)} FROM "{Order._meta.tablename}" o {" ".join(joins)} '
        f'WHERE {where} ORDER BY o."id" DESC LIMIT {{}}'
    )
    _listing[names] = sql
    return sql


def _view_of(record: Any) -> OrderView:
    row = dict(record)  # asyncpg answers Records
    store_name = row.pop("store_name")
    channel = ChannelFields()
    for index, view in enumerate(_views):
        for name, _ in view.columns:
            value = row.pop(f"v{index}_{name}")
            if view.kind == row["kind"]:
                setattr(channel, name, value)
    return OrderView(OrderRecord.of(row), store_name, channel)


async def list_orders(which: OrderFilter, *, limit: int) -> list[OrderView]:
    """Orders of every channel, newest first, in one query: a member's, a store's, or the chain's."""
    used = which.used()
    sql = _listing_sql(tuple(name for name, _ in used))
    rows = await get_engine().run_querystring(QueryString(sql, *(value for _, value in used), limit))
    return [_view_of(row) for row in rows]


async def member_orders(
    member_id: int, *, limit: int, before_id: int | None = None, kind: OrderKind | None = None
) -> list[OrderView]:
    """The member's orders of every channel (or of one kind), newest first, in one query."""
    return await list_orders(OrderFilter(member=member_id, kind=kind, before=before_id), limit=limit)


async def member_order(member_id: int, order_id: int) -> OrderView | None:
    """One of the member's orders, as the list shows it; None when it is not theirs."""
    views = await member_orders(member_id, limit=1, before_id=order_id + 1 if order_id < ID_MAX else None)
    return views[0] if views and views[0].order.id == order_id else None


@dataclass(slots=True)
class StoreSales:
    """A store's orders of one kind paid in a window: how many, the fen received, the coupons used and what they
    took off, and the units on their lines (a group-buy seat's units)."""

    store_id: int
    kind: OrderKind
    orders: int = 0
    sales_fen: int = 0
    coupons_used: int = 0
    coupon_discount_fen: int = 0
    units: int = 0


async def sales_by_store(since: datetime, until: datetime, *, units_of: OrderKind | None = None) -> list[StoreSales]:
    """Orders paid in [since, until), by store and kind (read by their paid_at index); with `units_of`, the units
    on the lines of that kind's orders too."""
    with heavy_reads():
        rows = (
            await Order.select(
                Order.store,
                Order.kind,
                Count().as_alias("orders"),
                Sum(Order.paid_fen).as_alias("sales"),
                Count(Order.coupon_id).as_alias("coupons"),
                Sum(Order.coupon_discount_fen).as_alias("coupon_discount"),
            )
            .where((Order.paid_at >= since) & (Order.paid_at < until))
            .group_by(Order.store, Order.kind)
        )
        units = (
            await OrderLine.select(OrderLine.order.store.as_alias("store"), Sum(OrderLine.quantity).as_alias("units"))
            .where((OrderLine.order.paid_at >= since) & (OrderLine.order.paid_at < until))
            .where(OrderLine.order.kind == units_of)
            .group_by(OrderLine.order.store)
            if units_of is not None
            else []
        )
    sales = {
        (row["store"], row["kind"]): StoreSales(
            store_id=row["store"],
            kind=OrderKind(row["kind"]),
            orders=int(row["orders"]),
            sales_fen=int(row["sales"] or 0),
            coupons_used=int(row["coupons"] or 0),
            coupon_discount_fen=int(row["coupon_discount"] or 0),
        )
        for row in rows
    }
    for row in units:
        if (item := sales.get((row["store"], units_of.value if units_of else ""))) is not None:
            item.units = int(row["units"] or 0)
    return list(sales.values())


# Outcomes, each inside the transaction that moves the money -----------------------------------------

_PAYING = Prepared(
    lambda order_id: (
        Order.select(Order.kind, Order.store, Order.member, Order.scene, Order.points_redeemed)
        .where((Order.id == order_id) & (Order.status == OrderStatus.paying))
        .first()
    )
)
# The order's one compare-and-set to paid, after its handlers: points earned add to what a handler noted on
# it already (a seat's own, when its payment made its group succeed). The order's member is left as it
# stands (a merge may have moved the order to its survivor meanwhile); a payer is written only onto an
# order that had none.
_MARK_PAID = Prepared(
    lambda paid_fen, now, earned, multiplier, order_id: (
        Order.update(
            {
                Order.status: OrderStatus.paid,
                Order.paid_fen: paid_fen,
                Order.paid_at: now,
                Order.points_earned: Order.points_earned + earned,
                Order.points_multiplier_percent: multiplier,
            }
        )
        .where((Order.id == order_id) & (Order.status == OrderStatus.paying))
        .returning(*Order.all_columns())
    )
)
_MARK_PAID_BY = Prepared(
    lambda paid_fen, now, member_id, enrolled, earned, multiplier, order_id: (
        Order.update(
            {
                Order.status: OrderStatus.paid,
                Order.paid_fen: paid_fen,
                Order.paid_at: now,
                Order.member: member_id,
                Order.member_enrolled: enrolled,
                Order.points_earned: Order.points_earned + earned,
                Order.points_multiplier_percent: multiplier,
            }
        )
        .where((Order.id == order_id) & (Order.status == OrderStatus.paying) & Order.member.is_null())
        .returning(*Order.all_columns())
    )
)


async def record_paid(
    order_id: int, *, paid_fen: int, payer_openid: str, app_id: str, now: datetime
) -> OrderRecord | None:
    """The order's money arrived: the payer is a member (enrolled if new), every paid handler runs, and the
    order is paid, with what they earned on it. Answers the order as its payment left it, or None when the
    order was not waiting for its money (paid or ended already).

    Inside the transaction that claimed the order's trade: no other payment of this order can be recorded
    meanwhile, so the order's compare-and-set comes last (one write), after its handlers.
    """
    row = await _PAYING.run(order_id)
    if row is None:
        return None
    member_id, enrolled = row["member"], False
    if member_id is None and payer_openid:
        member_id, enrolled = await members.enrol_payer(
            WeChatSession(app_id=app_id, openid=payer_openid, unionid=None), store_id=row["store"], now=now
        )
    kind = OrderKind(row["kind"])
    paid = PaidOrder(
        id=order_id,
        kind=kind,
        store_id=row["store"],
        member_id=member_id,
        member_enrolled=enrolled,
        paid_fen=paid_fen,
        points_redeemed=row["points_redeemed"],
        scene=row["scene"],
        paid_at=now,
    )
    effects = await on_paid.run(paid, kind)
    if row["member"] is None and member_id is not None:
        marked = await _MARK_PAID_BY.run(
            paid_fen, now, member_id, enrolled, effects.points_earned, effects.points_multiplier_percent, order_id
        )
    else:
        marked = await _MARK_PAID.run(paid_fen, now, effects.points_earned, effects.points_multiplier_percent, order_id)
    if not marked:  # the order left `paying` while this transaction held its trade: only a bug gets here
        raise RuntimeError(f"order {order_id} stopped waiting for its money while its payment was recorded")
    metrics.count_order(kind.value, "paid")
    return OrderRecord.of(marked[0])


_CLAIM_CLOSED = Prepared(
    lambda order_id, status, reason: (
        Order.update({Order.status: status, Order.failure_reason: reason})
        .where((Order.id == order_id) & (Order.status == OrderStatus.paying))
        .returning(Order.kind, Order.store, Order.member, Order.points_redeemed, Order.coupon_id)
    )
)


async def record_closed(order_id: int, *, status: OrderStatus, failure_reason: str, now: datetime) -> bool:
    """The order ended without its money (failed, or cancelled: reversed, closed, expired, given back);
    every closed handler runs. Answers whether this call ended it."""
    if status not in UNPAID:
        raise ValueError(f"an order closes failed or cancelled, not {status}")
    claimed = await _CLAIM_CLOSED.run(order_id, status, failure_reason[:32])
    if not claimed:
        return False
    row = claimed[0]
    kind = OrderKind(row["kind"])
    closed = ClosedOrder(
        id=order_id,
        kind=kind,
        store_id=row["store"],
        member_id=row["member"],
        status=status,
        failure_reason=failure_reason,
        points_redeemed=row["points_redeemed"],
        coupon_id=row["coupon_id"],
        closed_at=now,
    )
    await on_closed.run(closed, kind)
    metrics.count_order(kind.value, status.value)
    return True


@dataclass(frozen=True, slots=True)
class Reservation:
    """A refund's claim on the order's money: taken, or why not."""

    taken: bool
    refundable_fen: int = 0
    paid: bool = True  # False: the order is not (or no longer) one that can be refunded


_RESERVE = Prepared(
    lambda order_id, amount_fen, at_most: (
        Order.update({Order.refunded_fen: Order.refunded_fen + amount_fen})
        .where((Order.id == order_id) & Order.status.is_in(list(REFUNDABLE)) & (Order.refunded_fen <= at_most))
        .returning(Order.id)
    )
)


async def reserve_refund(order: OrderRecord, amount_fen: int) -> Reservation:
    """Inside the refund's transaction: raise the order's refunded sum, never past what was paid.

    `paid_fen` never changes once an order is paid, so the guard compares with a literal; concurrent
    refunds serialize on the order's row, and the ones that would pass the sum find nothing to update.
    """
    if await _RESERVE.run(order.id, amount_fen, order.paid_fen - amount_fen):
        return Reservation(taken=True)
    current = await Order.select(Order.status, Order.refunded_fen).where(Order.id == order.id).first()
    if current["status"] not in REFUNDABLE:
        return Reservation(taken=False, paid=False)
    return Reservation(taken=False, refundable_fen=order.paid_fen - current["refunded_fen"])


async def hold(order_id: int) -> None:
    """Inside a write transaction: take the order's row, so that what is summed next about it (its refunds)
    is not changed by a concurrent transaction meanwhile."""
    await db_hold(Order, order_id, Order.refunded_fen)


async def release_refund(order_id: int, amount_fen: int) -> None:
    """A refund that did not happen: its amount may be refunded again."""
    await Order.update({Order.refunded_fen: Order.refunded_fen - amount_fen}).where(Order.id == order_id)


async def record_refunded(
    order_id: int, *, refund_id: int, amount_fen: int, refunded_total: int, late: bool, now: datetime
) -> None:
    """A refund is done: the order's status follows the sum of its refunds, and every refunded handler runs."""
    order = (
        await Order.select(Order.kind, Order.store, Order.member, Order.paid_fen, Order.coupon_id)
        .where(Order.id == order_id)
        .first()
    )
    if late:  # received and given back at once: counted on the order only now
        await Order.update(
            {Order.status: OrderStatus.refunded, Order.paid_fen: amount_fen, Order.refunded_fen: amount_fen}
        ).where((Order.id == order_id) & Order.status.is_in(list(UNPAID)) & (Order.paid_fen == 0))
        order["paid_fen"] = amount_fen
    else:
        status = OrderStatus.refunded if refunded_total >= order["paid_fen"] else OrderStatus.partially_refunded
        await Order.update({Order.status: status}).where((Order.id == order_id) & Order.status.is_in(list(REFUNDABLE)))
    kind = OrderKind(order["kind"])
    refunded = RefundedOrder(
        id=order_id,
        kind=kind,
        store_id=order["store"],
        member_id=order["member"],
        refund_id=refund_id,
        amount_fen=amount_fen,
        refunded_fen=refunded_total,
        paid_fen=order["paid_fen"],
        late=late,
        coupon_id=order["coupon_id"],
        settled_at=now,
    )
    await on_refunded.run(refunded, kind)
    metrics.count_order(kind.value, "refund_done")


_NOTE_EARNED = Prepared(
    lambda points, multiplier, order_id: Order.update(
        {Order.points_earned: Order.points_earned + points, Order.points_multiplier_percent: multiplier}
    ).where(Order.id == order_id)
)


async def note_points_earned(order_id: int, points: int, *, multiplier_percent: int) -> None:
    """Points a channel had earned on the order later than its payment (a seat, when its group succeeds), and the
    multiplier they were earned at."""
    await _NOTE_EARNED.run(points, multiplier_percent, order_id)


# Merges: the merged member's orders become the survivor's -------------------------------------------


@merges.on_merge(merges.ORDERS)
async def move_orders(survivor_id: int, merged_id: int, now: datetime) -> merges.Moved:
    moved = await Order.update({Order.member: survivor_id}).where(Order.member == merged_id).returning(Order.id)
    return merges.Moved(orders=len(moved))
