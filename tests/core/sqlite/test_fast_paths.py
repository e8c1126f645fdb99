"""The embedded engine's fast paths answer what Piccolo's own paths answer: column converters, the
datetime adapter, reads off the loop, and WAL checkpoints that keep the WAL small."""

import asyncio
import os
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from piccolo.engine import sqlite as piccolo_sqlite
from piccolo.engine.sqlite import TransactionType
from piccolo.querystring import QueryString

from backend.core.db import get_engine, heavy_reads, insert_row, write_transaction
from backend.core.sqlite.engine import CHECKPOINT_EVERY_COMMITS, EmbeddedSQLiteEngine
from backend.core.sqlite.engine import heavy_reads as embedded_heavy_reads
from backend.stores.tables import Store
from tests.conftest import Ticker
from tests.core.sqlite.tables import Crate


@pytest.mark.parametrize(
    ("declared", "raw"),
    [
        ("BOOLEAN", b"1"),
        ("BOOLEAN", b"0"),
        ("TIMESTAMPTZ", b"2026-12-01 07:00:00.123456+00:00"),
        ("TIMESTAMPTZ", b"2026-12-01 07:00:00"),
        ("TIMESTAMPTZ", b"2026-12-01 07:00:00+00:00"),
        ("TIMESTAMPTZ", b"2026-12-01 15:00:00+08:00"),
    ],
)
def test_column_converters_answer_what_piccolos_answer(declared, raw):
    ours = sqlite3.converters[declared](raw)
    theirs = piccolo_sqlite.CONVERTERS[declared](raw)
    assert ours == theirs and type(ours) is type(theirs)
    if declared == "TIMESTAMPTZ":
        assert ours.tzinfo is not None


@pytest.mark.parametrize("stored", [0, -42, 2**63 - 1, -(2**63), 3.0, "17"])
async def test_integer_columns_answer_ints_without_a_converter(contract_tables, stored):
    # SQLite keeps an integral value given to an INTEGER column as an integer, and answers it as one:
    # what Piccolo's converter (through text and Decimal) answered.
    if not isinstance(get_engine(), EmbeddedSQLiteEngine):
        pytest.skip("the embedded engine's columns")
    await insert_row(Crate, label="ints", qty=stored, moves=stored, packed_on=date(2026, 12, 1))
    row = await Crate.select(Crate.id, Crate.qty, Crate.moves).where(Crate.label == "ints").first()
    expected = piccolo_sqlite.CONVERTERS["INTEGER"](str(stored).encode())
    assert row["qty"] == row["moves"] == expected == int(stored)
    assert type(row["qty"]) is type(row["moves"]) is type(row["id"]) is int


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 1, 7, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 12, 1, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
        datetime(2026, 12, 1, 15, 0, 0, 5, tzinfo=timezone(timedelta(hours=8))),
        datetime(2026, 12, 1, 7, 0, tzinfo=ZoneInfo("UTC")),
        datetime(2026, 12, 1, 7, 0),
    ],
    ids=["utc", "utc-whole-second", "utc-year-999", "shanghai", "plus-eight", "zoneinfo-utc", "naive"],
)
def test_the_datetime_adapter_stores_what_piccolos_stores(value):
    assert sqlite3.adapters[(datetime, sqlite3.PrepareProtocol)](value) == piccolo_sqlite.convert_datetime_in(value)


async def test_heavy_reads_answer_the_same(settings):
    async with write_transaction():
        for i in range(5):
            await insert_row(Store, code=f"H{i}", name=f"heavy {i}")
    plain = await Store.select(Store.code).order_by(Store.code)
    with heavy_reads():
        heavy = await Store.select(Store.code).order_by(Store.code)
    assert plain == heavy and len(heavy) == 5


@pytest.fixture
async def embedded(tmp_path):
    engine = EmbeddedSQLiteEngine(str(tmp_path / "fast.sqlite3"))
    await engine.run_ddl("CREATE TABLE item (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
    yield engine, tmp_path / "fast.sqlite3"
    engine.close()


async def test_heavy_reads_run_off_the_event_loop(embedded):
    engine, _ = embedded
    slow = QueryString(
        "SELECT (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) "
        "SELECT COUNT(*) FROM n) AS total"
    )
    async with Ticker() as heavy:
        with embedded_heavy_reads():
            rows = await engine.run_querystring(slow)
    async with Ticker() as plain:
        rows_on_loop = await engine.run_querystring(slow)  # an ordinary read runs on the loop
    assert rows == rows_on_loop == [{"total": 3000000}]
    assert heavy.ticks >= 3 and plain.ticks <= 1


async def test_the_wal_is_checkpointed_off_the_loop(embedded):
    engine, path = embedded
    size_before = os.path.getsize(path)
    for _ in range(CHECKPOINT_EVERY_COMMITS * 2 + 10):
        async with engine.transaction(transaction_type=TransactionType.immediate):
            await engine.run_querystring(QueryString("INSERT INTO item (note) VALUES ({})", "x" * 200))
    for _ in range(100):  # the checkpoint runs on its own thread
        if os.path.getsize(path) > size_before:
            break
        await asyncio.sleep(0.02)
    # With SQLite's own checkpoints off, only ours can have copied pages into the database file.
    assert os.path.getsize(path) > size_before + 100 * 200
    assert engine.writer().execute("PRAGMA wal_autocheckpoint").fetchone()["wal_autocheckpoint"] == 0


def _wal_restarts(wal) -> int | None:
    """The WAL header's checkpoint sequence number, which SQLite raises each time the WAL starts over."""
    try:
        with open(wal, "rb") as file:
            header = file.read(16)
    except FileNotFoundError:
        return None
    return int.from_bytes(header[12:16], "big") if len(header) == 16 else None


async def test_the_wal_starts_over_under_sustained_writes(embedded):
    """Writes that never pause still let the WAL be wholly checkpointed and start over, again and again.

    How often depends on how fast the checkpoint thread's fsync is beside the writes, so the load goes on
    until the WAL has started over three times, or for forty checkpoint rounds; a WAL copied back only by
    checkpoints that race the writer would almost never start over."""
    engine, path = embedded
    wal = path.with_name(path.name + "-wal")
    seen: set[int] = set()
    for i in range(CHECKPOINT_EVERY_COMMITS * 40):
        async with engine.transaction(transaction_type=TransactionType.immediate):
            await engine.run_querystring(QueryString("INSERT INTO item (note) VALUES ({})", "x" * 2000))
        if i % 50 == 0:
            await asyncio.sleep(0)  # the load never pauses: the checkpoint thread works beside it
            if (restarts := _wal_restarts(wal)) is not None:
                seen.add(restarts)
            if len(seen) > 3:
                break
    assert len(seen) > 3, seen
