"""Answers read from the database a moment ago, kept in this process for rows that rarely change.

The busiest requests ask the same things every time (is this staff account active, which
stores may it act for, what is this store's earn rate). A `Recent` keeps each answer for a
few seconds: a change made in this process forgets it at once, one made elsewhere is seen
within `seconds`.
"""

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class Recent(Generic[K, V]):
    _all: "weakref.WeakSet[Recent]" = weakref.WeakSet()

    def __init__(self, seconds: float, *, size: int = 100_000, coalesce: bool = False) -> None:
        self.seconds, self.size, self.coalesce = seconds, size, coalesce
        self._answers: dict[K, tuple[float, V]] = {}
        self._generation = 0  # raised by forget(): a load begun before it is not kept
        self._loading: dict[K, tuple[int, asyncio.Future[V]]] = {}  # loads under way, by key (with `coalesce`)
        Recent._all.add(self)

    def get(self, key: K, default: V | None = None) -> V | None:
        """The answer kept for `key`, or `default` when there is none or it is too old."""
        kept = self._answers.get(key, _MISSING)
        if kept is _MISSING or kept[0] <= time.monotonic():  # type: ignore[index]
            return default
        return kept[1]  # type: ignore[index]

    async def read(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The answer kept for `key`, else what `load()` answers now (kept from then on, None included).

        Kept for `seconds` from when the load began, and not at all when something was forgotten meanwhile:
        an answer is never older than `seconds`, nor older than a forget() that came after its read began.
        With `coalesce`, reads of a key while it is being loaded wait for that load rather than each loading it
        again: when a busy answer expires, one query, not one per waiting request (for answers many requests
        share, such as a store's page; answers per payer gain nothing from it)."""
        began, generation = time.monotonic(), self._generation
        kept = self._answers.get(key, _MISSING)
        if kept is not _MISSING and kept[0] > began:  # type: ignore[index]
            return kept[1]  # type: ignore[index]
        if self.coalesce:
            return await self._coalesced(key, load, began, generation)
        value = await load()
        if generation == self._generation:
            self._keep(key, value, began + self.seconds)
        return value

    async def _coalesced(self, key: K, load: Callable[[], Awaitable[V]], began: float, generation: int) -> V:
        loop, pending = asyncio.get_running_loop(), self._loading.get(key)
        if pending is not None and pending[0] == generation and pending[1].get_loop() is loop:
            try:
                return await asyncio.shield(pending[1])
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending[1].cancelled() or (task is not None and task.cancelling()):
                    raise
                # The load waited for was cancelled with its own request, not this one: load for this one.
                return await self.read(key, load)
        future: asyncio.Future[V] = loop.create_future()
        self._loading[key] = (generation, future)
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # its waiters raise it; nobody else need retrieve it
            raise
        finally:
            if self._loading.get(key, (0, None))[1] is future:
                del self._loading[key]
        future.set_result(value)
        if generation == self._generation:
            self._keep(key, value, began + self.seconds)
        return value

    def put(self, key: K, value: V) -> V:
        self._keep(key, value, time.monotonic() + self.seconds)
        return value

    def _keep(self, key: K, value: V, until: float) -> None:
        if len(self._answers) >= self.size:
            self._answers.clear()  # cheaper than an LRU, and only ever costs a few reads again
        self._answers[key] = (until, value)

    def forget(self, key: K | None = None) -> None:
        self._generation += 1
        if key is None:
            self._answers.clear()
        else:
            self._answers.pop(key, None)

    def forget_if(self, matches: Callable[[K], bool]) -> None:
        """Forget every answer whose key `matches` (and any load under way, as `forget` does)."""
        self._generation += 1
        for key in [key for key in self._answers if matches(key)]:
            del self._answers[key]

    @classmethod
    def forget_everything(cls) -> None:
        """Every Recent in the process starts empty (a wiped database: ids are given out again)."""
        for recent in list(cls._all):
            recent.forget()
