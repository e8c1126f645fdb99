"""One pipelined connection to Redis per process, shared by every request.

A pool hands each command a connection of its own and waits for its answer before the
connection serves another: per command, a lock taken twice, a health check, a timeout armed
and a write and a read of its own (about 50 us of Python in redis-py, the most expensive part
of a cached request). Redis answers a connection's commands in the order they were sent, so
one connection carries every request's commands instead: those sent in the same turn of the
event loop go out in one write, and each reply is matched to its command by position
(replies parsed by hiredis).

Waits are bounded by one watchdog instead of a timer per command: while commands are
outstanding, if the oldest has waited `timeout` seconds, Redis is not answering and the
connection is dropped, every command on it failing with `ConnectionError`; the next command
connects again (at most `timeout` seconds). A reply still owed to a request that gave up
(cancelled) is read and dropped, so the order holds.
"""

import asyncio
import hashlib
import ssl
import time
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis


class CommandError(Exception):
    """Redis refused the command (an error reply): the connection is fine."""


class _Protocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reader = hiredis.Reader()
        self._pending: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost is not None:
            raise ConnectionError("the connection to Redis is closed") from self.lost
        future = self._loop.create_future()
        self._pending.append((time.monotonic(), future))
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(command)
        return future

    def _flush(self) -> None:
        if self._out and self._transport is not None and self.lost is None:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                _, future = self._pending.popleft()
                if future.done():  # its request gave up waiting
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(CommandError(str(reply)))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as error:  # a reply nobody asked for: the stream is lost
            self.abort(ConnectionError(f"Redis sent what no command asked for: {error!r}"))

    def oldest_wait(self) -> float:
        return time.monotonic() - self._pending[0][0] if self._pending else 0.0

    def abort(self, error: BaseException) -> None:
        if self.lost is None:
            self.lost = error
        if self._transport is not None:
            self._transport.abort()
        self._fail_pending()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.lost is None:
            self.lost = ConnectionError(
                f"Redis closed the connection: {exc!r}" if exc else "Redis closed the connection"
            )
        self._fail_pending()

    def _fail_pending(self) -> None:
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(ConnectionError(str(self.lost)))
                future.exception()  # retrieved here: a request that gave up leaves no warning behind


def pack(*parts: bytes | str | int) -> bytes:
    """A command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Script:
    """A Lua script run by EVALSHA, sent whole (EVAL) when the server does not have it (restarted empty)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class RedisConnection:
    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a Redis URL: {url!r}")
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 6379
        self._ssl = ssl.create_default_context() if parts.scheme == "rediss" else None
        path = parts.path.strip("/")
        self._setup: list[bytes] = []
        if parts.password is not None:  # redis://user:password@host (an ACL user) or redis://:password@host
            names = (unquote(parts.username),) if parts.username else ()
            self._setup.append(pack("AUTH", *names, unquote(parts.password)))
        if path and int(path) != 0:
            self._setup.append(pack("SELECT", int(path)))
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    async def execute(self, *parts: bytes | str | int) -> Any:
        protocol = self._live() or await self._connected()
        return await protocol.send(pack(*parts))

    async def execute_together(self, *commands: tuple[bytes | str | int, ...]) -> list[Any]:
        """Commands sent back to back, nothing of another request's between them (MULTI ... EXEC is one)."""
        protocol = self._live() or await self._connected()
        futures = [protocol.send(pack(*command)) for command in commands]
        return list(await asyncio.gather(*futures))

    async def run(self, script: Script, keys: list[str], args: list[bytes | str | int]) -> Any:
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except CommandError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
            return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    def _live(self) -> _Protocol | None:
        protocol = self._protocol
        return protocol if protocol is not None and protocol.lost is None else None

    async def _connected(self) -> _Protocol:
        if self._closed:
            raise ConnectionError("the Redis connection is closed")
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
            # Retrieved here, whoever else waits: a connect nobody is left waiting for warns of nothing.
            self._connecting.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            _, protocol = await loop.create_connection(lambda: _Protocol(loop), self._host, self._port, ssl=self._ssl)
            try:
                for command in self._setup:
                    await protocol.send(command)
            except BaseException as error:
                protocol.abort(ConnectionError(f"Redis refused the connection's setup: {error!r}"))
                raise ConnectionError(f"Redis refused the connection's setup: {error}") from error
        if self._closed:
            protocol.abort(ConnectionError("the Redis connection is closed"))
            raise ConnectionError("the Redis connection is closed")
        self._protocol = protocol
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout / 4, self._watch)
        return protocol

    def _watch(self) -> None:
        """Drop a connection whose oldest outstanding command has waited `timeout`: Redis is not answering."""
        protocol = self._protocol
        if protocol is not None and protocol.lost is None and protocol.oldest_wait() >= self.timeout:
            protocol.abort(TimeoutError(f"Redis gave no answer in {self.timeout} s"))
        self._watchdog = None if self._closed else asyncio.get_running_loop().call_later(self.timeout / 4, self._watch)

    async def close(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._protocol is not None:
            self._protocol.abort(ConnectionError("the Redis connection is closed"))
            self._protocol = None
