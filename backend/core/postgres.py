"""The scale-out database: Piccolo's PostgresEngine on long-lived connections, used as the hot paths need.

Piccolo's engine takes an asyncpg pool connection for every statement outside a transaction and
for every transaction. asyncpg's pool costs about 120 us of Python for each acquire and release
(a proxy object, an inactivity timer) and resets each connection on its way back in, one more
round trip (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`): as much again
as the statements themselves. Nothing of ours leaves session state on a connection (no advisory
lock, LISTEN, cursor or SET outlives a statement or a transaction; the migrations' lock is held
on a connection of their own), so `Pool` keeps a plain list of connections and hands them out
as they are. Statements are prepared once per connection (asyncpg's statement cache).

It also bounds every wait, so that a database that stops answering (a network partition, a
paused or overloaded server) turns into a clear 503 within seconds instead of a hung request:

- taking a connection waits at most `acquire` seconds (all of them busy: a burst waits its turn),
  opening one `connect`;
- a statement waits at most `statement` seconds, or `heavy_statement` inside `heavy_reads()`
  (reports, exports); asyncpg then asks the server to cancel it;
- a connection whose statement timed out or broke, or that cannot be rolled back, is closed
  (the server rolls its transaction back), never reused or leaked;
- the server ends a session idle inside a transaction after `idle_in_transaction` seconds.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import asyncpg
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.querystring import QueryString

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds each wait on PostgreSQL may take (settings DB_*_TIMEOUT_SECONDS, whose defaults are the README's)."""

    connect: float
    acquire: float  # a burst queues for the pool; the database not answering is the other waits' part
    statement: float
    heavy_statement: float
    idle_in_transaction: float = 30.0


# Reads that may scan many rows (`backend.core.db.heavy_reads`) get the longer statement timeout.
heavy: ContextVar[bool] = ContextVar("postgres_heavy_reads", default=False)

# The errors that say the database is not answering (as opposed to refusing a statement).
UNAVAILABLE = (
    TimeoutError,
    ConnectionError,  # refused or reset
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.QueryCanceledError,  # the server's statement_timeout, or our cancel after a client timeout
)


class Pool:
    """Long-lived connections, handed out and taken back as they are (see the module's docstring).

    asyncpg's own pool costs about 120 us of Python for each acquire and release (a proxy object, an
    inactivity timer, the reset), as much as the statement it is taken for; this one keeps a list.
    A connection that broke, or whose statement timed out, is closed instead of taken back, and its
    place opens a new one when next needed.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], *, size: int, timeouts: Timeouts):
        self._connect, self._size, self._timeouts = connect, size, timeouts
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0  # connections open, or being opened
        self._closed = False

    async def acquire(self) -> asyncpg.Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._open -= 1
        if self._closed:
            raise asyncpg.InterfaceError("the pool is closed")
        if self._open >= self._size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self._timeouts.acquire):
                    handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and (connection := waiter.result()) is not None:
                    self.release(connection)  # handed over just as this waiter gave up
                elif waiter.done() and not waiter.cancelled():
                    self._pass_on()  # a place was handed over just as this waiter gave up
                raise
            if handed is not None:
                return handed
        else:
            self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._pass_on()
            raise

    def release(self, connection: asyncpg.Connection, *, broken: bool = False) -> None:
        """Take a connection back: to the next waiter, or the idle list; a broken one is closed."""
        if broken or self._closed or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()
            self._open -= 1
            self._pass_on()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _pass_on(self) -> None:
        """A place came free: the next waiter opens a connection of its own."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._open -= 1
            try:
                await connection.close(timeout=self._timeouts.connect)
            except Exception:
                connection.terminate()


def _leaves_it_unusable(error: BaseException) -> bool:
    """Whether a connection that saw this error must be closed rather than used again: the database not answering,
    or a wait given up on (a timeout, a cancelled request) while a statement may still be in flight on it. A
    statement the server refused (a constraint, its own timeout) or an error of the caller's leaves it usable."""
    return isinstance(error, (*UNAVAILABLE, asyncio.CancelledError)) and not isinstance(error, asyncpg.PostgresError)


class ScaleOutTransaction(PostgresTransaction):
    """Piccolo's transaction, with bounded waits, and the connection given back whatever happens.

    Piccolo's leaves the connection out of the pool, and the transaction as the current one, when
    its rollback raises: with a database that stopped answering, every failed request would leak a
    connection until none is left.
    """

    engine: "ScaleOutEngine"

    async def get_connection(self) -> Any:
        return await self.engine.acquire()

    async def __aexit__(self, exception_type, exception, traceback) -> bool:
        if self._parent:
            return exception is None
        broken = False
        try:
            if exception is not None:
                broken = _leaves_it_unusable(exception)
                if not self._rolled_back and not broken:
                    try:
                        await self.rollback()
                    except Exception as error:  # the request's own error is the one to report
                        logger.warning("rollback failed: the connection is closed", extra={"error": repr(error)})
                        broken = True
            elif not self._committed and not self._rolled_back:
                try:
                    await self.commit()
                except BaseException:
                    broken = True  # committed or not, the connection is in no state to be used again
                    raise
        finally:
            self.engine.current_transaction.reset(self.context)
            await self.engine.release(self.connection, broken=broken)
        return exception is None


class ScaleOutEngine(PostgresEngine):
    def __init__(self, config: dict[str, Any], *, timeouts: Timeouts) -> None:
        super().__init__(config=config)
        self.timeouts = timeouts
        self.pool: Pool | None = None  # type: ignore[assignment]

    async def start_connection_pool(self, **kwargs: Any) -> None:
        """Open the server's pool: `max_size` connections at most, opened as they are first needed."""
        timeouts = self.timeouts
        server_settings = {
            "application_name": "mall-backend",
            # The server's own guard, a little past ours: a statement whose client went away is still ended.
            "statement_timeout": str(int(max(timeouts.statement, timeouts.heavy_statement) * 1000) + 1000),
            "idle_in_transaction_session_timeout": str(int(timeouts.idle_in_transaction * 1000)),
        }

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(
                **self.config,
                timeout=timeouts.connect,
                command_timeout=timeouts.statement,
                server_settings=server_settings,
            )

        self.pool = Pool(connect, size=kwargs.get("max_size", 10), timeouts=timeouts)

    async def close_connection_pool(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()

    async def acquire(self) -> Any:
        if self.pool is None:
            return await self.get_new_connection()
        return await self.pool.acquire()

    async def release(self, connection: Any, *, broken: bool = False) -> None:
        if self.pool is None:
            await connection.close()
        else:
            self.pool.release(connection, broken=broken)

    def _statement_timeout(self) -> float | None:
        """The server's statements (on the pool) are bounded; a command's own (seeding, migrating) are not."""
        if self.pool is None:
            return None
        return self.timeouts.heavy_statement if heavy.get() else self.timeouts.statement

    async def _run_in_pool(self, query: str, args: Any = None) -> Any:
        connection = await self.acquire()
        broken = False
        try:
            return await connection.fetch(query, *(args or ()), timeout=self._statement_timeout())
        except BaseException as error:
            broken = _leaves_it_unusable(error)
            raise
        finally:
            await self.release(connection, broken=broken)

    async def run_compiled(self, query: str, args: Any) -> Any:
        """Run SQL already compiled for PostgreSQL (`$n` placeholders), in the current transaction if any."""
        current = self.current_transaction.get()
        if current is not None:
            return await current.connection.fetch(query, *args, timeout=self._statement_timeout())
        if self.pool is not None:
            return await self._run_in_pool(query, args)
        return await self._run_in_new_connection(query, args)

    async def run_querystring(self, querystring: QueryString, in_pool: bool = True) -> Any:
        query, args = querystring.compile_string(engine_type="postgres")
        return await self.run_compiled(query, args)

    def transaction(self, allow_nested: bool = True) -> ScaleOutTransaction:
        return ScaleOutTransaction(engine=self, allow_nested=allow_nested)
