"""A request id for every request: taken from X-Request-ID when sane, else new; echoed back, and carried by
every log line written while the request is served (a context variable the log handler reads). Each request
is counted in the metrics by its route template, status and duration; with ACCESS_LOG on, it is also one log
line."""

import logging
import re
import time
import uuid
from contextvars import ContextVar

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.metrics import observe_request

_SANE = re.compile(r"^[0-9A-Za-z._-]{8,64}$")
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")
access_logger = logging.getLogger("backend.access")


def request_id_of(scope: Scope) -> str:
    return scope.get("state", {}).get("request_id", "")


def request_id_middleware(app: ASGIApp, *, access_log: bool = False) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        supplied = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = supplied if _SANE.match(supplied) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started, status = time.perf_counter(), 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await app(scope, receive, send_with_id)
        finally:
            took, route = time.perf_counter() - started, scope.get("path_template") or scope["path"]
            observe_request(scope["method"], route, status, took)
            if access_log:
                access_logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(took * 1000, 1),
                    },
                )
            current_request_id.reset(token)

    return middleware
