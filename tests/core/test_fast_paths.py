"""The write and read fast paths behave exactly like the plain ones."""

import asyncio
import os
import socket
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from piccolo.engine.sqlite import TransactionType
from piccolo.querystring import QueryString
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from backend.core.clock import utcnow
from backend.core.db import Prepared, heavy_reads, insert_row, write_transaction
from backend.core.http import NoDelayHttpProtocol
from backend.core.idempotency import request_hash
from backend.core.sqlite import CHECKPOINT_EVERY_COMMITS, EmbeddedSQLiteEngine
from backend.core.sqlite import heavy_reads as embedded_heavy_reads
from backend.members.tables import EnrolmentChannel, Member, MemberStatus
from backend.stores.tables import Store
from tests.conftest import Ticker


async def test_insert_row_matches_piccolo_insert_with_defaults():
    async with write_transaction():
        fast_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier)
        plain = await Member.insert(Member(enrolled_via=EnrolmentChannel.cashier))
    fast = await Member.select().where(Member.id == fast_id).first()
    slow = await Member.select().where(Member.id == plain[0]["id"]).first()
    assert fast_id != plain[0]["id"]
    for row in (fast, slow):
        assert row["status"] == MemberStatus.active and row["enrolled_via"] == "cashier"
        assert row["nickname"] == "" and row["enrolled_store"] is None
        assert row["created_at"].tzinfo is not None
    assert abs((fast["created_at"] - slow["created_at"]).total_seconds()) < 60


async def test_insert_row_refuses_unknown_columns_and_obeys_constraints():
    with pytest.raises(TypeError, match="no columns"):
        await insert_row(Store, code="X1", name="x", owner="nobody")
    with pytest.raises(Exception, match="points_rate_in_range"):
        async with write_transaction():
            await insert_row(Store, code="X2", name="x", points_per_yuan=-5)
    assert await Store.count() == 0


@pytest.mark.parametrize(
    ("declared", "raw"),
    [
        ("INTEGER", b"0"),
        ("INTEGER", b"-42"),
        ("INTEGER", b"9223372036854775807"),
        ("INTEGER", b"3.0"),
        ("BOOLEAN", b"1"),
        ("BOOLEAN", b"0"),
        ("TIMESTAMPTZ", b"2026-12-01 07:00:00.123456+00:00"),
        ("TIMESTAMPTZ", b"2026-12-01 07:00:00"),
        ("TIMESTAMPTZ", b"2026-12-01 07:00:00+00:00"),
        ("TIMESTAMPTZ", b"2026-12-01 15:00:00+08:00"),
    ],
)
def test_column_converters_answer_what_piccolos_answer(declared, raw):
    from piccolo.engine import sqlite as piccolo_sqlite

    ours = sqlite3.converters[declared](raw)
    theirs = piccolo_sqlite.CONVERTERS[declared](raw)
    assert ours == theirs and type(ours) is type(theirs)
    if declared == "TIMESTAMPTZ":
        assert ours.tzinfo is not None


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
    from piccolo.engine import sqlite as piccolo_sqlite

    assert sqlite3.adapters[(datetime, sqlite3.PrepareProtocol)](value) == piccolo_sqlite.convert_datetime_in(value)


async def test_prepared_queries_answer_what_the_inline_queries_answer():
    ids = [await insert_row(Store, code=f"P{i}", name=f"prepared {i}", points_per_yuan=i) for i in range(3)]
    one = Prepared(lambda store_id: Store.select().where(Store.id == store_id).first())
    for store_id in ids + [10**9]:
        assert await one.run(store_id) == await Store.select().where(Store.id == store_id).first()
    some = Prepared(
        lambda least, active: (
            Store.select(Store.id, Store.code)
            .where((Store.points_per_yuan >= least) & (Store.active == active))
            .order_by(Store.id, ascending=False)
        )
    )
    assert await some.run(1, True) == await Store.select(Store.id, Store.code).where(
        (Store.points_per_yuan >= 1) & (Store.active == True)  # noqa: E712
    ).order_by(Store.id, ascending=False)
    assert [row["id"] for row in await some.run(1, True)] == [ids[2], ids[1]]

    member_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier)
    at = utcnow()
    touch = Prepared(
        lambda member_id, status, when: (
            Member.update({Member.status: status, Member.created_at: when})
            .where((Member.id == member_id) & Member.merged_into.is_null())
            .returning(*Member.all_columns())
        )
    )
    async with write_transaction():
        updated = await touch.run(member_id, MemberStatus.active, at)
    assert updated == [await Member.select().where(Member.id == member_id).first()]
    assert updated[0]["created_at"] == at and updated[0]["status"] == "active"
    assert await touch.run(10**9, MemberStatus.active, at) == []


async def test_prepared_queries_that_ask_for_processing_get_it():
    store_id = await insert_row(Store, code="N1", name="nested")
    member_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier, enrolled_store=store_id)
    nested = Prepared(
        lambda member_id: (
            Member.select(Member.id, Member.enrolled_store.name)
            .where(Member.id == member_id)
            .output(nested=True)
            .first()
        )
    )
    inline = (
        await Member.select(Member.id, Member.enrolled_store.name)
        .where(Member.id == member_id)
        .output(nested=True)
        .first()
    )
    assert await nested.run(member_id) == inline == {"id": member_id, "enrolled_store": {"name": "nested"}}


async def test_prepared_queries_refuse_what_they_cannot_bind():
    one = Prepared(lambda store_id: Store.select().where(Store.id == store_id).first())
    with pytest.raises(TypeError, match="None"):
        await one.run(None)
    unbound = Prepared(lambda store_id: Store.select().where(Store.id == 1).first())
    with pytest.raises(TypeError, match="bound"):
        await unbound.run(1)


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


async def test_the_wal_starts_over_under_sustained_writes(embedded):
    """Writes that never pause still let the WAL be wholly checkpointed and start over: it stays small."""
    engine, path = embedded
    wal = path.with_name(path.name + "-wal")
    rounds, largest = 12, 0
    for i in range(CHECKPOINT_EVERY_COMMITS * rounds):
        async with engine.transaction(transaction_type=TransactionType.immediate):
            await engine.run_querystring(QueryString("INSERT INTO item (note) VALUES ({})", "x" * 2000))
        if i % 50 == 0:
            await asyncio.sleep(0)  # the load never pauses: the checkpoint thread works beside it
            largest = max(largest, os.path.getsize(wal))
    # Every commit appends at least one 4 KiB page: a WAL that never started over would hold them all.
    appended = CHECKPOINT_EVERY_COMMITS * rounds * 4096
    assert largest < appended / 2, (largest, appended)


@pytest.mark.parametrize(("protocol", "nodelay"), [(NoDelayHttpProtocol, True), (HttpToolsProtocol, False)])
async def test_served_connections_have_nagle_off(protocol, nodelay):
    """As uvicorn binds for several workers (proto 0), asyncio leaves Nagle on; our protocol turns it off."""
    config = Config(app=lambda *args: None, log_level="error")
    config.load()
    state, made = ServerState(), []

    def factory() -> asyncio.Protocol:
        made.append(protocol(config=config, server_state=state, app_state={}))
        return made[-1]

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = await asyncio.get_running_loop().create_server(factory, sock=listener)
    _, writer = await asyncio.open_connection(*listener.getsockname())
    for _ in range(100):
        if made and made[0].transport is not None:
            break
        await asyncio.sleep(0.01)
    accepted = made[0].transport.get_extra_info("socket")
    assert bool(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
    writer.close()
    await writer.wait_closed()
    made[0].transport.close()
    await asyncio.sleep(0.01)  # the transport closes its socket on the next loop turn
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(
    ("request_fields", "digest"),
    [
        (
            {"amount_fen": 1234, "auth_code": "134567890123456789", "member_code": None, "points_to_redeem": 0},
            "d8b237d95a4b848c6fc5f44ef770f054b59d3bf3406f53cc0b448a815f3ddc0b",
        ),
        (
            {"kind": "earn", "member": 7, "points": 12, "store": 1, "source": ["till_order", "42"], "reason": "退款"},
            "af06e2fc5546a1e9ddc79394f01af8a8ae95c0faeaea2dd7872f8d7c1c2bcb95",
        ),
    ],
    ids=["till-order", "ledger-credit"],
)
def test_request_hashes_stay_what_stored_rows_hold(request_fields, digest):
    # Orders and ledger entries keep these digests: a replay after an upgrade must hash the same.
    assert request_hash(**request_fields) == digest
    assert request_hash(**dict(reversed(request_fields.items()))) == digest
