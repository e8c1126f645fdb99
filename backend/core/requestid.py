"""A request id for every request: taken from X-Request-ID when sane, else new; echoed back."""

import re
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

_SANE = re.compile(r"^[0-9A-Za-z._-]{8,64}$")


def request_id_of(scope: Scope) -> str:
    return scope.get("state", {}).get("request_id", "")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        supplied = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = supplied if _SANE.match(supplied) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware
