"""The store report: each store's day, by business day (China Standard Time).

A day's figures come from the rows of that day, read by their time indexes: orders by when they were paid, refunds
and points by when they were recorded, members by when they enrolled. Once a day has ended (and an hour more, for
a payment recorded at midnight to commit), the sweeper writes its figures as StoreDay rows, every store's in one
transaction; the report reads those, and works out from the rows only the days not written yet (today's).
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from msgspec.structs import astuple
from piccolo.query.functions.aggregate import Max, Min
from piccolo.querystring import QueryString

from backend.core.clock import business_day, day_bounds, utcnow
from backend.core.db import as_day, as_moment, get_engine, heavy_reads, is_unique_violation, write_transaction
from backend.hq.schemas import COLUMNS, KINDS, Figures
from backend.hq.tables import ReportDay, StoreDay
from backend.members import service as members
from backend.members.tables import EnrolmentChannel, Member
from backend.orders import service as orders
from backend.orders.tables import Order, OrderKind
from backend.payments import refunds
from backend.points import service as points

logger = logging.getLogger(__name__)

GRACE = timedelta(hours=1)  # a day is written this long after it ends
DAYS_PER_ROUND = 7  # days a sweeper round writes at most, so that a round stays short after a long pause
MAX_DAYS = 366  # the longest report


FIGURES = COLUMNS  # StoreDay's, in their order


@dataclass(slots=True)
class StoreDayRow:
    store_id: int
    day: date
    figures: Figures


async def figures_of(day: date) -> dict[int, Figures]:
    """Every store's figures for a business day, from the rows of that day."""
    since, until = day_bounds(day)
    found: dict[int, Figures] = {}

    def of(store_id: int) -> Figures:
        return found.setdefault(store_id, Figures())

    for sale in await orders.sales_by_store(since, until, units_of=OrderKind.groupbuy):
        figures = of(sale.store_id)
        setattr(figures, f"{sale.kind.value}_orders", sale.orders)
        setattr(figures, f"{sale.kind.value}_sales_fen", sale.sales_fen)
        figures.coupons_used += sale.coupons_used
        figures.coupon_discount_fen += sale.coupon_discount_fen
        figures.groupbuy_units += sale.units
    for store_id, (count, fen) in (await refunds.refunds_by_store(since, until)).items():
        of(store_id).refunds, of(store_id).refunds_fen = count, fen
    for (store_id, channel), count in (await members.enrolments_by_store(since, until)).items():
        setattr(of(store_id), f"new_members_{EnrolmentChannel(channel).value}", count)
    for store_id, moved in (await points.points_by_store(since, until)).items():
        if store_id is not None:
            figures = of(store_id)
            figures.points_earned, figures.points_redeemed, figures.points_expired = (
                moved.earned,
                moved.redeemed,
                moved.expired,
            )
    return {store_id: figures.totalled() for store_id, figures in found.items() if any(astuple(figures))}


# Writing the days that have ended ---------------------------------------------------------------------------


async def _first_day() -> date | None:
    """The first business day anything happened on: the first payment or enrolment (each read off its index)."""
    paid = await Order.select(Min(Order.paid_at).as_alias("at")).first()
    enrolled = await Member.select(Min(Member.created_at).as_alias("at")).first()
    moments = [as_moment(row["at"]) for row in (paid, enrolled) if row and row["at"] is not None]
    return business_day(min(moments)) if moments else None


async def roll_up(*, now: datetime | None = None, limit: int = DAYS_PER_ROUND) -> int:
    """Write the figures of the days that have ended and are not written yet, oldest first, at most `limit` of them;
    answers how many this call wrote. Any number of workers may run it: a day is written by whoever inserts its
    ReportDay row, in the transaction of its StoreDay rows."""
    now = now or utcnow()
    last = business_day(now - GRACE) - timedelta(days=1)
    written = await ReportDay.select(Max(ReportDay.day).as_alias("day")).first()
    if written and written["day"] is not None:
        day = as_day(written["day"]) + timedelta(days=1)
    elif (first := await _first_day()) is not None:
        day = first
    else:
        return 0
    done = 0
    while day <= last and done < limit:
        figures = await figures_of(day)
        try:
            async with write_transaction():
                claimed = (
                    await ReportDay.insert(ReportDay(day=day, stores=len(figures), rolled_at=utcnow()))
                    .on_conflict(target=ReportDay.day, action="DO NOTHING")
                    .returning(ReportDay.id)
                )
                if claimed and figures:
                    await StoreDay.insert(
                        *(StoreDay(store=store_id, day=day, **_columns(item)) for store_id, item in figures.items())
                    )
        except Exception as error:
            if not is_unique_violation(error):
                raise
            claimed = []
        if claimed:
            done += 1
            logger.info("store report day written", extra={"day": day.isoformat(), "stores": len(figures)})
        day += timedelta(days=1)
    return done


def _columns(figures: Figures) -> dict[str, int]:
    return {name: getattr(figures, name) for name in FIGURES}


# Reading ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    since: date
    until: date
    rows: list[StoreDayRow]  # the store-days with anything in them, by day then store
    by_store: dict[int, Figures]  # each store's sums over the window
    by_day: dict[date, Figures]  # the stores' sums per day (the days with anything in them)
    written_days: int  # of the days asked for, those read from StoreDay (the others worked out from the rows)


_ORDERS = " + ".join(f'"{kind}_orders"' for kind in KINDS)
_SALES = " + ".join(f'"{kind}_sales_fen"' for kind in KINDS)
_COLUMNS = ", ".join([_ORDERS, _SALES, *(f'"{name}"' for name in FIGURES)])  # in Figures' order
_SUMS = ", ".join(f"SUM({column})" for column in [_ORDERS, _SALES, *(f'"{name}"' for name in FIGURES)])


def _figures(values: Any) -> Figures:
    """Figures from a row's values after its first (the store or the day), in their order."""
    return Figures(*(int(value) for value in list(values)[1:]))


async def store_report(since: date, until: date, *, store_ids: frozenset[int] | None) -> Report:
    """Each store's days from `since` to `until` (both included), and their sums by store and by day; a store
    manager's (`store_ids`) stores only. The days written are read (their sums added up by the database), the
    others worked out from their rows."""
    where, args = '"day" >= {} AND "day" <= {}', [since, until]
    if store_ids is not None:
        ids = sorted(store_ids) or [0]
        where += f' AND "store" IN ({", ".join("{}" for _ in ids)})'
        args += ids
    engine = get_engine()

    async def read(sql: str) -> list[dict[str, Any]]:
        return await engine.run_querystring(QueryString(sql, *args))

    with heavy_reads():
        written = {
            as_day(row["day"])
            for row in await ReportDay.select(ReportDay.day).where((ReportDay.day >= since) & (ReportDay.day <= until))
        }
        table = StoreDay._meta.tablename
        listed = await read(f'SELECT "store", "day", {_COLUMNS} FROM "{table}" WHERE {where} ORDER BY "day", "store"')
        rows = [StoreDayRow(row["store"], as_day(row["day"]), Figures(*list(row.values())[2:])) for row in listed]
        by_store = {
            row["store"]: _figures(row.values())
            for row in await read(f'SELECT "store", {_SUMS} FROM "{table}" WHERE {where} GROUP BY "store"')
        }
        by_day = {
            as_day(row["day"]): _figures(row.values())
            for row in await read(f'SELECT "day", {_SUMS} FROM "{table}" WHERE {where} GROUP BY "day"')
        }
    day = since
    while day <= until:
        if day not in written:
            for store_id, figures in sorted((await figures_of(day)).items()):
                if store_ids is None or store_id in store_ids:
                    rows.append(StoreDayRow(store_id, day, figures))
                    by_store[store_id] = by_store.get(store_id, Figures()).plus(figures)
                    by_day[day] = by_day.get(day, Figures()).plus(figures)
        day += timedelta(days=1)
    rows.sort(key=lambda row: (row.day, row.store_id))
    return Report(since, until, rows, by_store, by_day, written_days=len(written))
