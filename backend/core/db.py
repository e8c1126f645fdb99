"""One way to reach the database, whichever engine the deployment runs on."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from piccolo.engine import engine_finder
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import TransactionType
from piccolo.querystring import QueryString

from backend.core.sqlite import EmbeddedSQLiteEngine
from backend.settings import check_database_url, sqlite_path


def engine_from_url(url: str) -> Engine:
    if check_database_url(url) == "sqlite":
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedSQLiteEngine(str(path))
    return PostgresEngine(config={"dsn": url})


def get_engine() -> Engine:
    engine = engine_finder()
    if engine is None:
        raise RuntimeError("no Piccolo engine: PICCOLO_CONF must point at backend.piccolo_conf")
    return engine


@asynccontextmanager
async def write_transaction() -> AsyncIterator[None]:
    """Open a transaction that will write; on SQLite take the write lock up front."""
    engine = get_engine()
    if isinstance(engine, EmbeddedSQLiteEngine):
        async with engine.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with engine.transaction():
            yield


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
