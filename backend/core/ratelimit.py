"""Coarse per-client request limit through the KV port, shared by every worker.

Business limits (login failures, code guesses) are separate counters keyed by
member, staff or till; this one only keeps a single client from flooding the API.
"""

import time

import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from backend.core.errors import error_body
from backend.core.kv import KV

WINDOW_SECONDS = 60
EXEMPT_PREFIXES = ("/healthz", "/readyz", "/schema")


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _slot(key: str, window: int) -> tuple[str, int]:
    """The counter key of the current fixed window, and the seconds until it closes."""
    now = int(time.time())
    slot = now // window
    return f"{key}:{slot}", max(1, (slot + 1) * window - now)


async def hit_window(kv: KV, key: str, *, limit: int, window: int) -> int | None:
    """Count one hit in the current fixed window; answer seconds to wait when over the limit."""
    slot_key, retry_after = _slot(key, window)
    count = await kv.incr(slot_key, expires_in=window + 1)
    return retry_after if count > limit else None


async def window_exhausted(kv: KV, key: str, *, limit: int, window: int) -> int | None:
    """Without counting: answer seconds to wait when the current window already holds `limit` hits."""
    slot_key, retry_after = _slot(key, window)
    count = await kv.get(slot_key)
    return retry_after if count is not None and int(count) >= limit else None


def rate_limit_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        limit = scope["app"].state.settings.rate_limit_per_minute
        if scope["type"] != "http" or limit == 0 or scope["path"].startswith(EXEMPT_PREFIXES):
            await app(scope, receive, send)
            return
        kv: KV = scope["app"].state.kv
        retry_after = await hit_window(kv, f"mall:core:rl:{client_address(scope)}", limit=limit, window=WINDOW_SECONDS)
        if retry_after is None:
            await app(scope, receive, send)
            return
        body = msgspec.json.encode(error_body("request.rate_limited", "Too many requests from this client; retry later.",
                                              {"retryAfterSeconds": retry_after}))
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})

    return middleware
