"""The KV port: the few fast, shared, expiring operations the domains need.

Two implementations with the same semantics: `MemoryKV` for the embedded
deployment (one process) and `RedisKV` for the scale-out one. Nothing that must
survive a restart lives only here; the database stays the source of truth.

A KV that does not answer raises `KVUnavailable` (503 `kv.unavailable`), and each use
decides what that means, said where it is used and in the README:
- fails open (the request goes on without the KV): the per-client rate limit, the poster
  limit, the group-buy stock gate and group-campaign cache (the database's guarded update
  decides alone), the referral leaderboard (read from the database), the WeChat access token;
- fails closed (503, nothing changed): the member-code replay guard and the staff-login and
  member-lookup failure counters, which guard secrets.
"""

import asyncio
import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from backend.core.errors import KVUnavailable
from backend.core.resp import CommandError, RedisConnection, Script

# Decrement by n only when at least n is left; answer the new value or -1.
# A missing key answers -2 so that callers rebuild it from the database.
_DECR_IF_ENOUGH = Script(
    """
local current = redis.call('GET', KEYS[1])
if not current then return -2 end
current = tonumber(current)
local n = tonumber(ARGV[1])
if current < n then return -1 end
return redis.call('DECRBY', KEYS[1], n)
"""
)

# DEL only when the key holds exactly this value: one holder of a pass spends it, nobody else can.
_POP_IF_EQUAL = Script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)

# INCRBY only when the gate exists: a missing gate is rebuilt from the database, never guessed.
_GIVE_BACK = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""
)

# INCR that sets the expiry only when the counter is born, so a window never slides.
_INCR_WINDOW = Script(
    """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return value
"""
)

GATE_MISSING = -2
GATE_SHORT = -1


class KV(ABC):
    """The port (an ABC, not a Protocol: an isinstance check of it, made for every request, stays cheap)."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def set(self, key: str, value: bytes, *, expires_in: float | None = None) -> None: ...

    @abstractmethod
    async def set_if_absent(self, key: str, value: bytes, *, expires_in: float) -> bool: ...

    @abstractmethod
    async def pop(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def pop_if_equal(self, key: str, value: bytes) -> bool:
        """Delete the key when it holds exactly `value`; answers whether it did."""

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def incr(self, key: str, *, expires_in: float) -> int: ...

    @abstractmethod
    async def ttl(self, key: str) -> float | None: ...

    @abstractmethod
    async def decr_if_enough(self, key: str, amount: int) -> int: ...

    @abstractmethod
    async def give_back(self, key: str, amount: int) -> int:
        """Add to a counter that exists, keeping its expiry; answers the new value or GATE_MISSING."""

    # Sorted sets (leaderboards): a board is written whole and read until it expires.
    @abstractmethod
    async def board_put(self, key: str, scores: dict[str, int], *, expires_in: float) -> bool:
        """Write a whole board unless one exists already; answers whether it was written."""

    @abstractmethod
    async def board_top(self, key: str, count: int) -> list[tuple[str, int]] | None:
        """The highest scores, ties by member; None when the board is missing."""

    @abstractmethod
    async def ping(self) -> bool: ...

    @abstractmethod
    async def close(self) -> None: ...


class MemoryKV(KV):
    """In-process KV for the embedded deployment; safe because one event loop owns it."""

    def __init__(self, *, clock=time.monotonic) -> None:
        self._data: dict[str, tuple[bytes | int, float | None]] = {}
        self._clock = clock

    def _live(self, key: str) -> bytes | int | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, deadline = item
        if deadline is not None and deadline <= self._clock():
            del self._data[key]
            return None
        return value

    def _deadline(self, expires_in: float | None) -> float | None:
        return None if expires_in is None else self._clock() + expires_in

    def _sweep(self) -> None:
        # Amortized clean-up so that keys nobody reads again do not pile up.
        if len(self._data) > 10_000 and len(self._data) % 1024 == 0:
            now = self._clock()
            for key in [k for k, (_, d) in self._data.items() if d is not None and d <= now]:
                del self._data[key]

    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        return str(value).encode() if isinstance(value, int) else value

    async def set(self, key: str, value: bytes, *, expires_in: float | None = None) -> None:
        self._sweep()
        self._data[key] = (value, self._deadline(expires_in))

    async def set_if_absent(self, key: str, value: bytes, *, expires_in: float) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, expires_in=expires_in)
        return True

    async def pop(self, key: str) -> bytes | None:
        value = await self.get(key)
        self._data.pop(key, None)
        return value

    async def pop_if_equal(self, key: str, value: bytes) -> bool:
        if await self.get(key) != value:  # a counter compares as the digits it reads as
            return False
        del self._data[key]
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, *, expires_in: float) -> int:
        current = self._live(key)
        if current is None:
            self._sweep()
            self._data[key] = (1, self._deadline(expires_in))
            return 1
        value = int(current) + 1
        self._data[key] = (value, self._data[key][1])
        return value

    async def ttl(self, key: str) -> float | None:
        if self._live(key) is None:
            return None
        deadline = self._data[key][1]
        return None if deadline is None else deadline - self._clock()

    async def decr_if_enough(self, key: str, amount: int) -> int:
        current = self._live(key)
        if current is None:
            return GATE_MISSING
        if int(current) < amount:
            return GATE_SHORT
        value = int(current) - amount
        self._data[key] = (value, self._data[key][1])
        return value

    async def give_back(self, key: str, amount: int) -> int:
        current = self._live(key)
        if current is None:
            return GATE_MISSING
        value = int(current) + amount
        self._data[key] = (value, self._data[key][1])
        return value

    async def board_put(self, key: str, scores: dict[str, int], *, expires_in: float) -> bool:
        if self._live(key) is not None:
            return False
        self._sweep()
        self._data[key] = ({m: n for m, n in scores.items() if n > 0}, self._deadline(expires_in))  # type: ignore[assignment]
        return True

    async def board_top(self, key: str, count: int) -> list[tuple[str, int]] | None:
        board = self._live(key)
        if not isinstance(board, dict):
            return None
        return sorted(board.items(), key=lambda item: (-item[1], item[0]))[:count]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


P = ParamSpec("P")
T = TypeVar("T")


def _answering(operation: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Redis refusing, resetting or timing out (down, restarting, overloaded) becomes KVUnavailable."""

    @functools.wraps(operation)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await operation(*args, **kwargs)
        except (OSError, CommandError) as error:  # ConnectionError and TimeoutError are OSErrors
            raise KVUnavailable() from error

    return call


class RedisKV(KV):
    """KV on a real Redis; every operation is one command (or one MULTI) and atomic on the server, sent on the
    process's one pipelined connection (`backend.core.resp`)."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        # Every wait is bounded: a dead or paused Redis surfaces as an error within `timeout`, not a hang.
        self.redis = RedisConnection(url, timeout=timeout)

    @_answering
    async def get(self, key: str) -> bytes | None:
        return await self.redis.execute("GET", key)

    @_answering
    async def set(self, key: str, value: bytes, *, expires_in: float | None = None) -> None:
        if expires_in is None:
            await self.redis.execute("SET", key, value)
        else:
            await self.redis.execute("SET", key, value, "PX", int(expires_in * 1000))

    @_answering
    async def set_if_absent(self, key: str, value: bytes, *, expires_in: float) -> bool:
        return await self.redis.execute("SET", key, value, "PX", int(expires_in * 1000), "NX") is not None

    @_answering
    async def pop(self, key: str) -> bytes | None:
        return await self.redis.execute("GETDEL", key)

    @_answering
    async def pop_if_equal(self, key: str, value: bytes) -> bool:
        return bool(await self.redis.run(_POP_IF_EQUAL, [key], [value]))

    @_answering
    async def delete(self, key: str) -> None:
        await self.redis.execute("DEL", key)

    @_answering
    async def incr(self, key: str, *, expires_in: float) -> int:
        return int(await self.redis.run(_INCR_WINDOW, [key], [int(expires_in * 1000)]))

    @_answering
    async def ttl(self, key: str) -> float | None:
        left = await self.redis.execute("PTTL", key)
        return left / 1000 if left >= 0 else None

    @_answering
    async def decr_if_enough(self, key: str, amount: int) -> int:
        return int(await self.redis.run(_DECR_IF_ENOUGH, [key], [amount]))

    @_answering
    async def give_back(self, key: str, amount: int) -> int:
        return int(await self.redis.run(_GIVE_BACK, [key], [amount]))

    @_answering
    async def board_put(self, key: str, scores: dict[str, int], *, expires_in: float) -> bool:
        flat = [part for member, score in scores.items() if score > 0 for part in (score, member)]
        return bool(await self.redis.run(_BOARD_PUT, [key], [int(expires_in * 1000), *flat]))

    @_answering
    async def board_top(self, key: str, count: int) -> list[tuple[str, int]] | None:
        *_, (exists, flat) = await self.redis.execute_together(
            ("MULTI",),
            ("EXISTS", key),
            ("ZREVRANGE", key, 0, count, "WITHSCORES"),  # one more: the placeholder may be among them
            ("EXEC",),
        )
        if not exists:
            return None
        rows = zip(flat[::2], flat[1::2], strict=True)
        # Redis orders equal scores by member descending; the board's order is by member ascending.
        return sorted(((m.decode(), int(s)) for m, s in rows if m), key=lambda item: (-item[1], item[0]))[:count]

    async def ping(self) -> bool:
        try:
            return await asyncio.wait_for(self.redis.execute("PING"), 1.0) == b"PONG"
        except Exception:
            return False

    async def close(self) -> None:
        await self.redis.close()


# An empty board is kept as a placeholder member scored 0, so "exists" means "built".
_BOARD_PUT = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZADD', KEYS[1], 0, '')
for i = 2, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
)


def kv_from_url(redis_url: str | None) -> KV:
    return RedisKV(redis_url) if redis_url else MemoryKV()
