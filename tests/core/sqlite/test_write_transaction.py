"""write_transaction() on both engines: concurrent writers, rollback, and the embedded engine's lock handling."""

import asyncio
import sqlite3

import pytest
from piccolo.engine.sqlite import TransactionType
from piccolo.querystring import QueryString

from backend.core.db import is_unique_violation, write_transaction
from backend.core.sqlite.engine import DatabaseBusy, EmbeddedSQLiteEngine, TransactionLost, sqlite_ddl
from backend.stores.tables import Store
from tests.conftest import Ticker


async def make_store(code: str, points_per_yuan: int = 0) -> int:
    async with write_transaction():
        rows = await Store.insert(Store(code=code, name=code, points_per_yuan=points_per_yuan))
    return rows[0]["id"]


async def test_fifty_concurrent_write_transactions_all_land():
    counter = await make_store("COUNTER")

    async def write(i: int) -> None:
        async with write_transaction():
            await Store.insert(Store(code=f"C{i:03d}", name=f"concurrent {i}"))
            # A guarded SQL-side increment: correct without row locks on either engine.
            rows = (
                await Store.update({Store.points_per_yuan: Store.points_per_yuan + 1})
                .where((Store.id == counter) & (Store.points_per_yuan < 1000))
                .returning(Store.points_per_yuan)
            )
            assert rows

    await asyncio.gather(*(write(i) for i in range(50)))
    assert await Store.count() == 51
    assert (await Store.select(Store.points_per_yuan).where(Store.id == counter).first())["points_per_yuan"] == 50


async def test_a_failed_transaction_leaves_nothing_and_the_next_one_works():
    with pytest.raises(RuntimeError):
        async with write_transaction():
            await Store.insert(Store(code="GONE", name="rolled back"))
            raise RuntimeError("boom")
    assert await Store.count() == 0

    await make_store("DUP")
    with pytest.raises(Exception) as caught:
        async with write_transaction():
            await Store.insert(Store(code="KEPT-OUT", name="first half"))
            await Store.insert(Store(code="DUP", name="breaks the unique code"))
    assert is_unique_violation(caught.value)
    assert await Store.count() == 1
    await make_store("AFTER")
    assert await Store.count() == 2


async def test_database_check_constraints_hold_on_both_engines():
    store_id = await make_store("CHK", points_per_yuan=5)
    with pytest.raises(Exception, match="points_rate_in_range"):
        async with write_transaction():
            await Store.update({Store.points_per_yuan: -1}).where(Store.id == store_id)
    with pytest.raises(Exception, match="points_rate_in_range"):
        await make_store("CHK2", points_per_yuan=5000)
    assert (await Store.select(Store.points_per_yuan).where(Store.id == store_id).first())["points_per_yuan"] == 5


async def test_concurrent_duplicates_keep_exactly_one():
    results = await asyncio.gather(*(make_store("SAME") for _ in range(20)), return_exceptions=True)
    assert sum(isinstance(r, int) for r in results) == 1
    assert all(is_unique_violation(r) for r in results if not isinstance(r, int))
    assert await Store.count() == 1


# The embedded engine on its own file, so these run in both modes.


@pytest.fixture
async def embedded(tmp_path):
    engine = EmbeddedSQLiteEngine(str(tmp_path / "own.sqlite3"), busy_timeout_seconds=0.3)
    await engine.run_ddl("CREATE TABLE item (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL)")
    await engine.run_ddl('ALTER TABLE "item" ADD CONSTRAINT qty_non_negative CHECK (("qty" >= 0))')
    yield engine
    engine.close()


async def test_embedded_begin_that_cannot_get_the_lock_fails_cleanly_and_releases(embedded, tmp_path):
    other = sqlite3.connect(tmp_path / "own.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(DatabaseBusy):
        async with embedded.transaction(transaction_type=TransactionType.immediate):
            pass
    assert not embedded.write_lock().locked()
    other.execute("ROLLBACK")
    other.close()
    async with embedded.transaction(transaction_type=TransactionType.immediate):
        await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", 3))
    rows = await embedded.run_querystring(QueryString("SELECT SUM(qty) AS total FROM item"))
    assert rows[0]["total"] == 3


async def test_embedded_waits_for_a_short_foreign_lock_without_blocking_the_loop(embedded, tmp_path):
    other = sqlite3.connect(tmp_path / "own.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def release_later() -> None:
        await asyncio.sleep(0.1)
        other.execute("ROLLBACK")

    release = asyncio.create_task(release_later())
    async with Ticker(0.01) as ticker:
        async with embedded.transaction(transaction_type=TransactionType.immediate):
            await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", 1))
    await release
    other.close()
    assert ticker.ticks >= 5  # the loop kept running while the transaction waited for the lock
    assert (await embedded.run_querystring(QueryString("SELECT COUNT(*) AS n FROM item")))[0]["n"] == 1


async def test_embedded_check_constraint_is_enforced(embedded):
    with pytest.raises(sqlite3.IntegrityError, match="qty_non_negative"):
        await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", -1))
    await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", 2))
    with pytest.raises(sqlite3.IntegrityError, match="qty_non_negative"):
        await embedded.run_querystring(QueryString("UPDATE item SET qty = qty - 5"))
    assert (await embedded.run_querystring(QueryString("SELECT qty FROM item")))[0]["qty"] == 2


async def test_embedded_cancelled_transaction_rolls_back_and_frees_the_writer(embedded):
    entered = asyncio.Event()

    async def slow_writer() -> None:
        async with embedded.transaction(transaction_type=TransactionType.immediate):
            await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", 7))
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow_writer())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not embedded.write_lock().locked()
    assert (await embedded.run_querystring(QueryString("SELECT COUNT(*) AS n FROM item")))[0]["n"] == 0


async def insert_item(engine: EmbeddedSQLiteEngine, qty: int) -> None:
    async with engine.transaction(transaction_type=TransactionType.immediate):
        await engine.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", qty))


def count_commits(engine: EmbeddedSQLiteEngine) -> list[str]:
    commits: list[str] = []
    engine.writer().set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    return commits


async def test_concurrent_embedded_transactions_share_commits_and_return_only_once_committed(embedded, tmp_path):
    commits = count_commits(embedded)
    outside = sqlite3.connect(tmp_path / "own.sqlite3", isolation_level=None)  # as another process reads

    async def write_then_look(qty: int) -> int:
        await insert_item(embedded, qty)
        return outside.execute("SELECT COUNT(*) FROM item WHERE qty = ?", (qty,)).fetchone()[0]

    seen = await asyncio.gather(*(write_then_look(qty) for qty in range(1, 51)))
    outside.close()
    assert seen == [1] * 50  # each writer's row was committed by the time it went on
    assert 1 <= len(commits) < 50  # ...by COMMITs that carried several transactions each


async def test_a_lone_writer_commits_each_transaction_at_once(embedded):
    commits = count_commits(embedded)
    for qty in range(1, 21):
        await insert_item(embedded, qty)
        assert len(commits) == qty  # nothing to gather: no transaction waited for another's


async def test_a_failing_transaction_in_a_group_rolls_back_alone(embedded):
    async def fail() -> None:
        async with embedded.transaction(transaction_type=TransactionType.immediate):
            await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", 99))
            await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", -1))  # breaks the check

    results = await asyncio.gather(insert_item(embedded, 1), fail(), insert_item(embedded, 2), return_exceptions=True)
    assert results[0] is None and results[2] is None and isinstance(results[1], sqlite3.IntegrityError)
    rows = await embedded.run_querystring(QueryString("SELECT qty FROM item ORDER BY qty"))
    assert [row["qty"] for row in rows] == [1, 2]


async def test_a_caller_cancelled_while_its_group_commits_leaves_the_others_be(embedded):
    first = asyncio.create_task(insert_item(embedded, 1))
    second = asyncio.create_task(insert_item(embedded, 2))
    await asyncio.sleep(0)  # both ran their transactions into one group; its COMMIT comes on the next turn
    first.cancel()
    await second  # committed as if nothing happened
    with pytest.raises(asyncio.CancelledError):
        await first
    rows = await embedded.run_querystring(QueryString("SELECT qty FROM item ORDER BY qty"))
    assert [row["qty"] for row in rows] == [1, 2]  # the cancelled caller's write was in the group already


async def test_a_group_sqlite_rolled_back_fails_every_transaction_in_it(embedded):
    async def end_the_group() -> None:
        async with embedded.transaction(transaction_type=TransactionType.immediate) as transaction:
            await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", 5))
            transaction.connection.execute("ROLLBACK")  # as SQLite itself does on some I/O errors

    results = await asyncio.gather(insert_item(embedded, 4), end_the_group(), return_exceptions=True)
    assert isinstance(results[0], TransactionLost)  # it had left the group and waited for a COMMIT that never came
    assert isinstance(results[1], sqlite3.OperationalError)  # its own savepoint was gone with the group
    assert (await embedded.run_querystring(QueryString("SELECT COUNT(*) AS n FROM item")))[0]["n"] == 0
    await insert_item(embedded, 6)  # the engine goes on with a new group
    assert (await embedded.run_querystring(QueryString("SELECT qty FROM item")))[0]["qty"] == 6


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ('ALTER TABLE "t" ADD CONSTRAINT u1 UNIQUE ("a", "b")', ['CREATE UNIQUE INDEX u1 ON "t" ("a", "b")']),
        (
            'ALTER TABLE "t" DROP CONSTRAINT u1',
            ["DROP INDEX IF EXISTS u1", "DROP TRIGGER IF EXISTS u1_insert", "DROP TRIGGER IF EXISTS u1_update"],
        ),
        ('CREATE TABLE "t" ("a" INTEGER)', ['CREATE TABLE "t" ("a" INTEGER)']),
    ],
)
def test_sqlite_constraint_ddl_translation(ddl, expected):
    assert sqlite_ddl(ddl) == expected


async def test_embedded_read_refused_on_the_loop_waits_on_a_thread(embedded, tmp_path):
    await embedded.run_querystring(QueryString("INSERT INTO item (qty) VALUES ({})", 4))
    embedded.close()  # the engine reconnects on its next statement, while the file is held
    hog = sqlite3.connect(tmp_path / "own.sqlite3", isolation_level=None, timeout=0)
    hog.execute("PRAGMA locking_mode = EXCLUSIVE")  # holds the file until it closes: readers are refused
    hog.execute("BEGIN IMMEDIATE")
    hog.execute("INSERT INTO item (qty) VALUES (1)")
    hog.execute("COMMIT")

    async def release_later() -> None:
        await asyncio.sleep(0.1)
        hog.close()

    release = asyncio.create_task(release_later())
    rows = await embedded.run_querystring(QueryString("SELECT SUM(qty) AS total FROM item"))
    await release
    assert rows == [{"total": 5}]
