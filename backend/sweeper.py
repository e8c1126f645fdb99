"""The periodic settlement loop: claims due rows by compare-and-set, so any number of workers may run it."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from backend.points import service as points

logger = logging.getLogger(__name__)


async def sweep_once(*, now: datetime | None = None) -> dict[str, int]:
    """Settle everything that is due; answers how many rows of each kind were settled."""
    return {"points_lots_expired": await points.expire_due(now=now)}


@asynccontextmanager
async def running_sweeper(interval: float) -> AsyncIterator[None]:
    """Sweep every `interval` seconds while the app runs (0: never)."""
    if interval <= 0:
        yield
        return

    async def loop() -> None:
        while True:
            try:
                await sweep_once()
            except Exception:  # one failed pass must not stop the next ones
                logger.exception("sweep failed")
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="sweeper")
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
