"""Coarse per-client request limit through the KV port, shared by every worker.

Business limits (login failures, code guesses) are separate counters keyed by
member, staff or till; this one only keeps a single client from flooding the API.
It fails open: a KV that does not answer (Redis down, or slower than its timeout)
lets the request through, counted as a KV error and logged at most every few
seconds, since refusing or failing every request would turn a guard into an outage.
The business limits fail closed: they guard secrets.
"""

import logging
import math
import time
from collections.abc import Sequence

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from backend.core import metrics
from backend.core.errors import KVUnavailable, error_body
from backend.core.kv import KV

logger = logging.getLogger(__name__)
_LOG_EVERY_SECONDS = 10.0

WINDOW_SECONDS = 60
# WeChat Pay posts notifications from a few addresses, and retries what it cannot deliver.
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/schema", "/api/v1/payments/wechat/notify")


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def _seconds_left(kv: KV, key: str, window: int) -> int:
    left = await kv.ttl(key)
    return max(1, math.ceil(left if left is not None else window))


async def hit_window(kv: KV, key: str, *, limit: int, window: int) -> int | None:
    """Count one hit in the key's window (it opens at the first hit); answer seconds to wait when over the limit."""
    count = await kv.incr(key, expires_in=window)
    return await _seconds_left(kv, key, window) if count > limit else None


async def reserve_attempt(kv: KV, counters: Sequence[tuple[str, int]], *, window: int) -> int | None:
    """Take a place in each (key, limit) counter before checking a secret; answer seconds to wait when one is full.

    Counting before the check means concurrent guesses cannot all slip in under the limit.
    """
    for key, limit in counters:
        retry_after = await hit_window(kv, key, limit=limit, window=window)
        if retry_after is not None:
            return retry_after
    return None


async def release_attempt(kv: KV, counters: Sequence[tuple[str, int]]) -> None:
    """A successful attempt gives its places back: only failures use up the limit."""
    for key, _ in counters:
        await kv.decr_if_enough(key, 1)


class RateLimitMiddleware:
    """Refuse a client past `limit` requests in a minute (0 turns the limit off)."""

    def __init__(self, app: ASGIApp, *, kv: KV, limit: int) -> None:
        self.app, self.kv, self.limit = app, kv, limit
        self._logged_at = -math.inf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit == 0 or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            retry_after = await hit_window(
                self.kv, f"mall:core:rl:{client_address(scope)}", limit=self.limit, window=WINDOW_SECONDS
            )
        except KVUnavailable as error:
            retry_after = None
            metrics.ERRORS.labels("kv").inc()
            if (now := time.monotonic()) - self._logged_at >= _LOG_EVERY_SECONDS:
                self._logged_at = now
                logger.warning("rate limit not applied: the KV did not answer", extra={"error": repr(error.__cause__)})
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        message = "Too many requests from this client; retry later."
        body = msgspec.json.encode(error_body("request.rate_limited", message, {"retryAfterSeconds": retry_after}))
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
