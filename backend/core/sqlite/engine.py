"""The embedded database: Piccolo's SQLite engine on long-lived connections.

Piccolo's SQLiteEngine opens a new aiosqlite connection (a new thread) for every
query and every transaction, which caps an HTTP write path at a few hundred per
second with multi-second tails. This engine keeps the same query layer and
changes only where statements run:

- every transaction runs on one long-lived writer connection, one transaction at
  a time (an in-process lock serializes writers, as SQLite does anyway);
- transactions that run while one waits to commit share its COMMIT (group
  commit): each is a savepoint of one SQLite transaction, which commits on the
  loop's next turn, or under concurrent writes once GROUP_COMMIT_WINDOW_SECONDS
  have passed since the last COMMIT; each answers only once its COMMIT is done.
  Savepoints keep their undo pages in memory (`temp_store`), not in a file;
- statements of a transaction run directly on the event loop: SQLite is a library
  call taking microseconds here, cheaper than a hop to a thread; the only wait
  that could be long, taking the write lock from another process, is retried
  with `asyncio.sleep` instead of blocking in SQLite's busy handler;
- reads outside a transaction run on the loop too, on a reader connection of
  their own (WAL lets it read beside the writer); a report that may scan many
  rows opts into `heavy_reads()`, which sends its reads to threads instead;
- WAL checkpoints (which fsync the database file) run on a thread of their own
  every few hundred commits instead of inside a commit on the loop; the few
  frames committed while one ran are copied by a second, short checkpoint that
  the next writer waits for, so that the WAL is then wholly in the database and
  starts over instead of growing for as long as writes keep coming (a WAL of
  gigabytes makes every commit and page lookup slower);
- a failed BEGIN releases everything it took (the shipped engine leaks the
  connection and its non-daemon thread, which hangs the process at exit).
"""

import asyncio
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory
from piccolo.querystring import QueryString

logger = logging.getLogger(__name__)


# Piccolo's converters for these declared types (which every row of ours has several of) take the text
# through a decoding wrapper: a few microseconds a column. These answer the same values. An INTEGER column
# needs none: SQLite answers its integers as they are (Piccolo's converter took them through text and Decimal).
def _boolean(value: bytes) -> bool:
    return value == b"1"


def _timestamptz(value: bytes) -> datetime:
    moment = datetime.fromisoformat(value.decode())
    return moment if moment.tzinfo is UTC else moment.replace(tzinfo=UTC)


def _utc_text(value: datetime) -> str:
    """What Piccolo's adapter stores (aware times in UTC, as PostgreSQL keeps them).

    A request binds the same few moments many times (its `now` into every row it writes), so the texts of
    the latest are kept: equal datetimes are the same instant, whose text is the same."""
    text = _TEXTS.get(value)
    if text is None:
        if len(_TEXTS) >= _TEXTS_KEPT:
            _TEXTS.clear()
        text = _TEXTS[value] = _format_utc(value)
    return text


_TEXTS: dict[datetime, str] = {}
_TEXTS_KEPT = 256


def _format_utc(value: datetime) -> str:
    """`str(value)` in UTC, whose isoformat builds the text through printf-style calls at several times the cost
    of these."""
    if value.tzinfo is None:
        return value.isoformat(" ")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.microsecond:
        return _UTC_MICROSECONDS % (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
    return _UTC_SECONDS % (value.year, value.month, value.day, value.hour, value.minute, value.second)


_UTC_SECONDS = "%04d-%02d-%02d %02d:%02d:%02d+00:00"
_UTC_MICROSECONDS = "%04d-%02d-%02d %02d:%02d:%02d.%06d+00:00"


for _declared, _converter in (("BOOLEAN", _boolean), ("TIMESTAMPTZ", _timestamptz)):
    sqlite3.register_converter(_declared, _converter)
sqlite3.converters.pop("INTEGER", None)
sqlite3.register_adapter(datetime, _utc_text)

BEGIN_RETRY_SECONDS = 0.002
CHECKPOINT_EVERY_COMMITS = 300  # SQLite's own default is every 1,000 WAL pages: a few hundred small commits
# While writers run concurrently (a group carried more than one transaction in the last CONCURRENT_SECONDS)
# and groups commit more often than this, the next one waits for the rest of the interval, gathering the
# transactions that run meanwhile (each waits at most this long); a lone writer's group commits on the
# loop's next turn. 2 ms gave the most checkouts a second (scripts/bench: 1 ms and 3 ms fewer, 1.5 ms varied
# from run to run). The best window shrinks as a transaction's own cost does: with less work per checkout,
# waiting longer leaves the loop idle sooner than it saves COMMITs.
GROUP_COMMIT_WINDOW_SECONDS = 0.002
CONCURRENT_SECONDS = 0.1
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024  # a WAL that grew past this (a long read held it) is cut back at restart


_heavy_reads: ContextVar[bool] = ContextVar("heavy_reads", default=False)


@contextmanager
def heavy_reads() -> Iterator[None]:
    """Reads inside this block may scan many rows: run them on threads, off the event loop."""
    token = _heavy_reads.set(True)
    try:
        yield
    finally:
        _heavy_reads.reset(token)


class DatabaseBusy(Exception):
    """Another process held the SQLite write lock for longer than the configured timeout."""


class TransactionLost(Exception):
    """The SQLite transaction that carried a group of transactions ended without committing them."""


class _Savepoint:
    def __init__(self, name: str, connection: sqlite3.Connection) -> None:
        self.name = name
        self._connection = connection

    async def rollback_to(self) -> None:
        self._connection.execute(f"ROLLBACK TO SAVEPOINT {self.name}")

    async def release(self) -> None:
        self._connection.execute(f"RELEASE SAVEPOINT {self.name}")


MEMBER_SAVEPOINT = "group_member"


_PENDING: Any = object()


class _Group:
    """Transactions that share one SQLite transaction, each in a savepoint, committed together."""

    __slots__ = ("loop", "size", "_outcome", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.size = loop, 0
        self._outcome: Any = _PENDING  # None once committed, else what ended it
        self._waiters: list[asyncio.Future[None]] = []

    def committed(self) -> asyncio.Future[None]:
        """A future of the caller's own (cancelling it leaves the others be) that the group's COMMIT settles."""
        waiter = self.loop.create_future()
        if self._outcome is _PENDING:
            self._waiters.append(waiter)
        elif self._outcome is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(self._outcome)
        return waiter

    def settle(self, error: BaseException | None = None) -> None:
        self._outcome = error
        for waiter in self._waiters:
            if waiter.done():
                continue  # its transaction's caller was cancelled while waiting
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        self._waiters.clear()


class EmbeddedTransaction(SQLiteTransaction):
    """A transaction on the engine's writer connection, holding the in-process write lock.

    It runs in a savepoint of the group's SQLite transaction (see `EmbeddedSQLiteEngine.join_group`)
    and answers only once the COMMIT that carries it is done, so what it wrote is committed and
    visible to every reader when the caller goes on. One that fails rolls back its savepoint
    alone, and also waits for that COMMIT: a row it collided with is then there to be read.
    """

    engine: "EmbeddedSQLiteEngine"
    _group: _Group

    async def __aenter__(self) -> SQLiteTransaction:
        if self._parent is not None:
            return self._parent
        lock = self.engine.write_lock()
        await lock.acquire()
        try:
            self.connection = self.engine.writer()
            self._group = await self.engine.join_group(self.connection)
        except BaseException:
            self.engine.commit_open_group()  # a COMMIT put off while this held the lock still comes
            lock.release()
            raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def begin(self) -> None:  # the engine begins with retries; see __aenter__
        raise NotImplementedError

    async def commit(self) -> None:
        """Keep this transaction's writes in its group; they are committed when the group is."""
        self.connection.execute(f"RELEASE {MEMBER_SAVEPOINT}")
        self._committed = True

    async def rollback(self) -> None:
        if self.connection.in_transaction:  # else SQLite rolled back the whole group itself
            self.connection.execute(f"ROLLBACK TO {MEMBER_SAVEPOINT}")
            self.connection.execute(f"RELEASE {MEMBER_SAVEPOINT}")
        self._rolled_back = True

    async def savepoint(self, name: str | None = None) -> _Savepoint:  # type: ignore[override]
        name = name or f"savepoint_{self.get_savepoint_id()}"
        if not name.isidentifier() or name == MEMBER_SAVEPOINT:
            raise ValueError("savepoint names are identifiers of their own")
        self.connection.execute(f"SAVEPOINT {name}")
        return _Savepoint(name, self.connection)

    async def rollback_to(self, savepoint_name: str) -> None:
        await _Savepoint(savepoint_name, self.connection).rollback_to()

    async def __aexit__(self, exception_type, exception, traceback) -> bool:
        if self._parent:
            return exception is None
        try:
            if exception is not None:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                try:
                    await self.commit()
                except BaseException:
                    await self.rollback()
                    raise
        finally:
            self.engine.current_transaction.reset(self.context)
            self.engine.leave_group(self._group, self.connection)
            self.engine.write_lock().release()
        if isinstance(exception, Exception) or exception is None:
            try:
                await self._group.committed()
            except Exception:
                if exception is None and self._committed:
                    raise  # the group did not commit: neither did this transaction
        return exception is None


class EmbeddedSQLiteEngine(SQLiteEngine):
    """SQLiteEngine with a long-lived writer connection and thread-owned readers."""

    def __init__(self, path: str, *, busy_timeout_seconds: float = 10.0, readers: int = 4) -> None:
        super().__init__(path=path, check_same_thread=False)
        self.busy_timeout_seconds = busy_timeout_seconds
        self.reader_count = readers
        self._writer: sqlite3.Connection | None = None
        self._loop_reader: sqlite3.Connection | None = None
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._reader_connections: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._guard = threading.Lock()
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpoint: Future | None = None
        self._tail_due = False
        self._commits = 0
        self._group: _Group | None = None
        self._commit_soon = False
        self._last_commit = 0.0  # loop time of the last group COMMIT
        self._concurrent_until = 0.0  # writers count as concurrent until then

    # Connections -----------------------------------------------------------

    def _connect(self, *, busy_timeout_ms: int) -> sqlite3.Connection:
        connection = sqlite3.connect(**self.connection_kwargs)
        try:
            connection.row_factory = dict_factory
            connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA temp_store = MEMORY")
        except BaseException:
            connection.close()
            raise
        return connection

    def writer(self) -> sqlite3.Connection:
        if self._writer is None:
            # No busy handler: it would block the loop. In WAL mode the only lock a
            # transaction waits for is taken by BEGIN IMMEDIATE, retried in `begin`.
            self._writer = self._connect(busy_timeout_ms=0)
            self._writer.execute("PRAGMA wal_autocheckpoint = 0")  # see `count_commit`
            self._writer.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        return self._writer

    def loop_reader(self) -> sqlite3.Connection:
        if self._loop_reader is None:
            self._loop_reader = self._connect(busy_timeout_ms=0)
        return self._loop_reader

    def count_commit(self) -> None:
        """Count a commit; every so often copy the WAL back into the database off the loop."""
        self._commits += 1
        if self._commits < CHECKPOINT_EVERY_COMMITS or (self._checkpoint is not None and not self._checkpoint.done()):
            return
        self._commits = 0
        with self._guard:
            if self._checkpointer is None:
                self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
            # PASSIVE never waits for, nor blocks, the writer or the readers.
            self._checkpoint = self._checkpointer.submit(self._read, "PRAGMA wal_checkpoint(PASSIVE)", [])
            self._tail_due = True

    async def finish_checkpoint(self) -> None:
        """With the write lock held: copy what was committed while the last checkpoint ran.

        No writer can append meanwhile, so this one completes, and the next commit starts
        the WAL over. It holds writers up for the copy of a few hundred frames; readers go on.
        """
        if not self._tail_due or self._checkpoint is None or not self._checkpoint.done():
            return
        self._tail_due = False
        try:
            await asyncio.wrap_future(self._checkpointer.submit(self._read, "PRAGMA wal_checkpoint(PASSIVE)", []))
        except sqlite3.Error as error:  # the next round tries again; the commits themselves are safe in the WAL
            logger.warning("WAL checkpoint failed", extra={"error": repr(error)})

    async def join_group(self, connection: sqlite3.Connection) -> _Group:
        """With the write lock held: enter the open group, or open one with BEGIN IMMEDIATE.

        A COMMIT costs several times what a small transaction's statements do (it writes every
        page they touched to the WAL), so the transactions that run while one waits to commit
        share it: each runs in a savepoint, and the group commits once the write lock is free.
        """
        group = self._group
        if group is not None and group.loop is not asyncio.get_running_loop():
            if connection.in_transaction:  # left open by an event loop that is gone: nobody waits for it
                connection.execute("ROLLBACK")
            group = self._group = None
        if group is None:
            self._commit_soon = False
            await self.finish_checkpoint()
            # Always take the write lock at BEGIN: a DEFERRED transaction that upgrades later
            # could meet another process's lock with no busy handler to wait for it. (In WAL
            # mode an EXCLUSIVE transaction takes no other lock than this.)
            await self.begin(connection, TransactionType.immediate)
            group = self._group = _Group(asyncio.get_running_loop())
        connection.execute(f"SAVEPOINT {MEMBER_SAVEPOINT}")
        group.size += 1
        return group

    def leave_group(self, group: _Group, connection: sqlite3.Connection) -> None:
        """A transaction is done with its savepoint: have the group committed, soon or at the window's end."""
        if group is not self._group:
            return  # settled already (closed, or rolled back by SQLite)
        if not connection.in_transaction:  # an error made SQLite roll back the whole group
            self._group = None
            group.settle(TransactionLost("SQLite rolled back the transaction group"))
            return
        self.commit_open_group()

    def commit_open_group(self) -> None:
        """Have the open group committed on a coming turn of the loop: soon, or at the window's end."""
        if self._group is not None and not self._commit_soon:
            self._commit_soon = True
            loop = asyncio.get_running_loop()
            due = self._last_commit + GROUP_COMMIT_WINDOW_SECONDS
            if due > loop.time() and self._concurrent_until > loop.time():  # busy: gather what runs until then
                loop.call_at(due, self._commit_group)
            else:
                loop.call_soon(self._commit_group)

    def _commit_group(self) -> None:
        self._commit_soon = False
        group = self._group
        if group is None or self.write_lock().locked():
            return  # nothing open, or a transaction is inside it: that one has it committed when it leaves
        self._group = None
        writer = self.writer()
        try:
            writer.execute("COMMIT")
        except BaseException as error:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            group.settle(error)
            return
        self._last_commit = asyncio.get_running_loop().time()
        if group.size > 1:
            self._concurrent_until = self._last_commit + CONCURRENT_SECONDS
        group.settle()
        self.count_commit()

    def write_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect(busy_timeout_ms=int(self.busy_timeout_seconds * 1000))
            self._local.connection = connection
            with self._guard:
                self._reader_connections.append(connection)
        return connection

    def _reader_pool(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._readers is None:
                self._readers = ThreadPoolExecutor(self.reader_count, thread_name_prefix="sqlite-reader")
            return self._readers

    async def begin(self, connection: sqlite3.Connection, transaction_type: TransactionType) -> None:
        deadline = time.monotonic() + self.busy_timeout_seconds
        delay = BEGIN_RETRY_SECONDS
        while True:
            try:
                connection.execute(f"BEGIN {transaction_type.value}")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() >= deadline:
                    raise DatabaseBusy("the database is locked by another process") from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def close(self) -> None:
        """Close every connection; the engine reopens them on next use."""
        with self._guard:
            pools = [self._readers, self._checkpointer]
            self._readers = self._checkpointer = self._checkpoint = None
            self._tail_due = False
            connections, self._reader_connections = self._reader_connections, []
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True)
        for connection in connections:
            connection.close()
        self._local = threading.local()
        group, self._group, self._commit_soon = self._group, None, False
        if group is not None and not group.loop.is_closed():
            group.settle(TransactionLost("the engine was closed before the group committed"))
        for connection in (self._loop_reader, self._writer):
            if connection is not None:
                connection.close()  # an open group is rolled back with it
        self._loop_reader = self._writer = None

    # Query execution -------------------------------------------------------

    @staticmethod
    def _run(connection: sqlite3.Connection, query: str, args: list[Any]) -> list[dict[str, Any]]:
        cursor = connection.execute(query, args)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    def _read(self, query: str, args: list[Any]) -> list[dict[str, Any]]:
        return self._run(self._reader(), query, args)

    async def _run_in_existing_connection(self, connection, query, args=None, query_type="generic", table=None):
        return self._run(connection, query, args or [])

    async def _run_in_new_connection(self, query, args=None, query_type="generic", table=None):
        args = args or []
        if _is_read(query):
            if not _heavy_reads.get():
                try:
                    return self._run(self.loop_reader(), query, args)
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) and "busy" not in str(error):
                        raise
                    # A WAL reader is refused only in rare moments (a WAL reset or recovery):
                    # wait for it on a thread, whose connection has a busy handler.
            return await asyncio.get_running_loop().run_in_executor(self._reader_pool(), self._read, query, args)
        async with self.transaction(transaction_type=TransactionType.immediate) as transaction:
            return self._run(transaction.connection, query, args)

    async def run_compiled(self, query: str, args: list[Any]) -> list[dict[str, Any]]:
        """Run SQL already compiled for SQLite (`?` placeholders), in the current transaction if any."""
        current = self.current_transaction.get()
        if current is not None:
            return self._run(current.connection, query, args)
        return await self._run_in_new_connection(query, args)

    async def insert_compiled(self, query: str, args: list[Any]) -> int:
        """Run a compiled INSERT of one row, in the current transaction if any; answers its rowid."""
        current = self.current_transaction.get()
        if current is None:
            async with self.transaction(transaction_type=TransactionType.immediate) as transaction:
                return self._insert(transaction.connection, query, args)
        return self._insert(current.connection, query, args)

    @staticmethod
    def _insert(connection: sqlite3.Connection, query: str, args: list[Any]) -> int:
        cursor = connection.execute(query, args)
        try:
            return cursor.lastrowid
        finally:
            cursor.close()

    async def run_querystring(self, querystring: QueryString, in_pool: bool = False):
        query, args = querystring.compile_string(engine_type=self.engine_type)
        current = self.current_transaction.get()
        if current is not None:
            return self._run(current.connection, query, args)
        return await self._run_in_new_connection(query, args)

    async def run_ddl(self, ddl: str, in_pool: bool = False):
        current = self.current_transaction.get()
        if current is not None:
            return self._run_ddl(current.connection, ddl)
        async with self.transaction(transaction_type=TransactionType.immediate) as transaction:
            return self._run_ddl(transaction.connection, ddl)

    def _run_ddl(self, connection: sqlite3.Connection, ddl: str) -> list[dict[str, Any]]:
        response: list[dict[str, Any]] = []
        for statement in sqlite_ddl(ddl):
            response = self._run(connection, statement, [])
        return response

    def transaction(
        self, transaction_type: TransactionType = TransactionType.deferred, allow_nested: bool = True
    ) -> EmbeddedTransaction:
        return EmbeddedTransaction(engine=self, transaction_type=transaction_type, allow_nested=allow_nested)


_ADD_CONSTRAINT = re.compile(
    r"^ALTER TABLE (?P<table>\S+) ADD CONSTRAINT (?P<name>\w+) (?P<kind>UNIQUE|CHECK) (?P<body>.*)$", re.S
)
_DROP_CONSTRAINT = re.compile(r"^ALTER TABLE (?P<table>\S+) DROP CONSTRAINT (IF EXISTS )?(?P<name>\w+)$")


def sqlite_ddl(ddl: str) -> list[str]:
    """Piccolo writes table constraints as ALTER TABLE ... ADD CONSTRAINT, which SQLite lacks.

    A unique constraint becomes a unique index of the same name; a check becomes
    insert and update triggers that abort with SQLite's own constraint error, so
    the database still holds the invariant.
    """
    statement = ddl.strip()
    if added := _ADD_CONSTRAINT.match(statement):
        table, name, body = added["table"], added["name"], added["body"]
        if added["kind"] == "UNIQUE":
            if body.startswith("NULLS NOT DISTINCT"):
                raise ValueError(f"{name}: SQLite has no UNIQUE NULLS NOT DISTINCT")
            return [f"CREATE UNIQUE INDEX {name} ON {table} {body}"]
        abort = f"SELECT RAISE(ABORT, 'CHECK constraint failed: {name}')"
        body = re.sub(r'"(\w+)"', r'NEW."\1"', body)  # inside a trigger the row is NEW
        return [
            f"CREATE TRIGGER {name}_insert BEFORE INSERT ON {table} WHEN NOT {body} BEGIN {abort}; END",
            f"CREATE TRIGGER {name}_update BEFORE UPDATE ON {table} WHEN NOT {body} BEGIN {abort}; END",
        ]
    if dropped := _DROP_CONSTRAINT.match(statement):
        name = dropped["name"]
        return [
            f"DROP INDEX IF EXISTS {name}",
            f"DROP TRIGGER IF EXISTS {name}_insert",
            f"DROP TRIGGER IF EXISTS {name}_update",
        ]
    return [ddl]


def _is_read(query: str) -> bool:
    # Anything else, a WITH included, goes through the writer: correct for any statement.
    return query.lstrip()[:6].upper() == "SELECT"
