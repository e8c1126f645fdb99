"""One way to reach the database, whichever engine the deployment runs on.

The domains import everything database from here. The embedded engine and the prepared-query
layer (`Prepared`, `insert_row`) live in `backend.core.sqlite`, the scale-out engine in
`backend.core.postgres`: the places that lean on Piccolo's internals; this module re-exports what
the domains use of them.
"""

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from piccolo.columns import Column
from piccolo.columns.combination import Where
from piccolo.engine.base import BaseTransaction, Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import TransactionType
from piccolo.querystring import QueryString
from piccolo.table import Table

from backend.core import postgres
from backend.core.postgres import ScaleOutEngine, Timeouts
from backend.core.sqlite.engine import EmbeddedSQLiteEngine
from backend.core.sqlite.engine import heavy_reads as sqlite_heavy_reads
from backend.core.sqlite.prepared import Prepared, get_engine, insert_row
from backend.settings import Settings, check_database_url, sqlite_path

__all__ = [
    "Prepared",
    "as_day",
    "as_moment",
    "close_database",
    "contains",
    "engine_from_url",
    "get_engine",
    "heavy_reads",
    "hold",
    "insert_row",
    "is_unique_violation",
    "like",
    "open_database",
    "ping_database",
    "write_transaction",
]


def engine_from_url(url: str, settings: Settings | None = None) -> Engine:
    if check_database_url(url) == "sqlite":
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedSQLiteEngine(str(path))
    settings = settings or Settings()  # the defaults, where no environment was read
    timeouts = Timeouts(
        connect=settings.db_connect_timeout_seconds,
        acquire=settings.db_pool_timeout_seconds,
        statement=settings.db_statement_timeout_seconds,
        heavy_statement=settings.db_heavy_statement_timeout_seconds,
    )
    return ScaleOutEngine(config={"dsn": url}, timeouts=timeouts)


async def hold(table: type[Table], row_id: int, column: Column) -> Any:
    """Inside a write transaction: take the row (PostgreSQL's row lock; SQLite writes one at a time), so that what is
    read and decided about it is not changed by a concurrent transaction meanwhile; answers `column` as held."""
    rows = await table.update({column: column}).where(table.id == row_id).returning(column)
    return rows[0][column._meta.name] if rows else None


def write_transaction() -> BaseTransaction:
    """`async with write_transaction():` opens a transaction that will write; on SQLite it takes the lock up front.

    A lone statement needs none: PostgreSQL runs it as a transaction of its own in one round trip (BEGIN and
    COMMIT around it would be two more), and the embedded engine takes the write lock for it all the same."""
    engine = get_engine()
    if isinstance(engine, EmbeddedSQLiteEngine):
        return engine.transaction(transaction_type=TransactionType.immediate)
    return engine.transaction()


def like(text: str) -> tuple[str, str]:
    """The operator and pattern that match a text holding `text` (LIKE's wildcards in it dropped, not escaped: the
    engines escape differently), case aside: PostgreSQL's ILIKE folds any letter's case, SQLite's LIKE only ASCII's
    (Chinese has none)."""
    word = " ".join(text.replace("%", " ").replace("_", " ").replace("\\", " ").split())
    return ("LIKE" if isinstance(get_engine(), EmbeddedSQLiteEngine) else "ILIKE"), f"%{word}%"


def contains(column: Column, text: str) -> Where:
    """`column` holds `text` (see `like`)."""
    operator, pattern = like(text)
    return column.like(pattern) if operator == "LIKE" else column.ilike(pattern)


def as_moment(value: Any) -> Any:
    """A moment as a raw or aggregate query answers it: SQLite answers those as text (no declared type to convert)."""
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return value


def as_day(value: Any) -> Any:
    """A date as a raw or aggregate query answers it (see as_moment)."""
    return date.fromisoformat(value) if isinstance(value, str) else value


@contextmanager
def heavy_reads() -> Iterator[None]:
    """Mark reads that may scan many rows (reports): the embedded engine runs them off the event loop, the
    scale-out one gives them the longer statement timeout (DB_HEAVY_STATEMENT_TIMEOUT_SECONDS)."""
    token = postgres.heavy.set(True)
    try:
        with sqlite_heavy_reads():
            yield
    finally:
        postgres.heavy.reset(token)


async def open_database(*, pool_size: int) -> None:
    engine = get_engine()
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool(min_size=1, max_size=pool_size)


async def close_database() -> None:
    engine = get_engine()
    if isinstance(engine, PostgresEngine):
        if engine.pool is not None:
            await engine.close_connection_pool()
    elif isinstance(engine, EmbeddedSQLiteEngine):
        engine.close()


async def ping_database(*, timeout: float) -> bool:
    try:
        rows = await asyncio.wait_for(get_engine().run_querystring(QueryString("SELECT 1 AS ok")), timeout)
    except Exception:
        return False
    return bool(rows) and rows[0]["ok"] == 1


def is_unique_violation(error: BaseException) -> bool:
    """True when a statement broke a unique constraint, on either engine."""
    if isinstance(error, sqlite3.IntegrityError):
        return "UNIQUE constraint failed" in str(error)
    return isinstance(error, asyncpg.UniqueViolationError)


def is_deadlock(error: BaseException) -> bool:
    """True when PostgreSQL ended this transaction to break a deadlock with another (SQLite writes one at a
    time and has none): the whole transaction was rolled back and may be run again."""
    return isinstance(error, asyncpg.DeadlockDetectedError)
