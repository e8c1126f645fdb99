"""What the OpenAPI document says of every operation beyond its schema: who may call it (the bearer scheme of
a member or of staff, or none) and the errors it answers, all in our `{code, message, details}` shape.

Who calls an operation is read from its handler: one that takes the `member` dependency needs a member's
token, one that takes `staff` a staff account's. The errors follow: 401 and 403 for either, 404 for a path that
names an object, 400, 413 and 422 for a body, 422 for parameters, 409 for writes, 429 for every operation (the
rate limiter answers them all).
"""

import inspect
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType

from backend.core.schema import Struct

MEMBER_SCHEME, STAFF_SCHEME = "memberBearer", "staffBearer"
SECURITY_SCHEMES = {
    MEMBER_SCHEME: SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="A member's accessToken, from POST /api/v1/auth/miniprogram/login.",
    ),
    STAFF_SCHEME: SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="A staff account's accessToken, from POST /api/v1/auth/staff/login.",
    ),
}
COMPONENTS = Components(security_schemes=SECURITY_SCHEMES)


class ErrorOut(Struct):
    """Every error: a stable `code` (`<domain>.<reason>`), a message for people, and details."""

    code: str
    message: str
    details: dict[str, Any]


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorOut, description=description, generate_examples=False)


ERRORS = {
    400: _error("The request cannot be read: a body that is not JSON (`request.malformed_json`) or is cut short."),
    401: _error("No token, or one that has expired (`auth.unauthenticated`)."),
    403: _error("A token of the wrong kind or role (`auth.forbidden`)."),
    404: _error("Nothing there, or another member's or store's object (`<domain>.not_found`)."),
    413: _error("The body is larger than MAX_BODY_BYTES (`request.too_large`)."),
    415: _error("A body of a media type the operation does not take (`<domain>.unsupported_media_type`)."),
    409: _error("The request conflicts with what is there (a replay that differs, a state that forbids it)."),
    422: _error("The request is not valid (`request.invalid`, with the fields in `details.fields`)."),
    429: _error("Too many requests (`request.rate_limited`); `Retry-After` says when to come back."),
    502: _error("WeChat or WeChat Pay refused or failed the call; `code` says what was (or was not) done."),
    503: _error("Busy or not ready (`service.unavailable`, `payments.busy`): the same request may be sent again."),
}


def replayed(answer: type) -> dict[int, ResponseSpec]:
    """The 200 of a create sent again with the same idempotency key: what the first request made, no `Location`."""
    return {
        200: ResponseSpec(data_container=answer, description="A replay: what the first request with this key made.")
    }


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The error answers an operation gives beyond those its shape implies (see `document`), for its decorator's
    `responses`: a 404 for an object its body names, a 401 for credentials it checks itself."""
    return {status: ERRORS[status] for status in statuses}


BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


def operation_with(
    *, body: tuple[str, ...] = (), answers: tuple[str, ...] = (), answers_schema: Schema = BINARY
) -> type[Operation]:
    """An operation whose body or answer is not a schema of ours: `body` the media types it takes as raw bytes,
    `answers` the media types its success answer may also come in (an image format, a CSV export)."""

    @dataclass
    class Documented(Operation):
        takes_body = bool(body)

        def __post_init__(self) -> None:
            if body:
                content = {media: OpenAPIMediaType(schema=BINARY) for media in body}
                self.request_body = RequestBody(content=content, required=True)
            if answers:
                success = next(r for status, r in (self.responses or {}).items() if status.startswith("2"))
                success.content = {
                    **(success.content or {}),
                    **{m: OpenAPIMediaType(schema=answers_schema) for m in answers},
                }

    return Documented


def document(app: Litestar) -> None:
    """Give every operation its summary, security and error answers (the document is built from these when first
    read). A handler's docstring is its summary line, a blank line, then its description."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not hasattr(handler, "responses"):
                continue
            summary, _, description = inspect.cleandoc(handler.fn.__doc__ or "").partition("\n\n")
            if summary and handler.summary is None:
                handler.summary, handler.description = summary.removesuffix("."), description or None
            parameters = handler.parsed_fn_signature.parameters
            who = MEMBER_SCHEME if "member" in parameters else STAFF_SCHEME if "staff" in parameters else None
            statuses = {429}
            if who is not None:
                handler._resolved_security = [{who: []}]
                statuses |= {401, 403}
            if route.path_parameters:
                statuses |= {404, 422}
            if "data" in parameters or getattr(handler.operation_class, "takes_body", False):
                statuses |= {400, 413, 422}
            if any(name not in ("member", "staff") for name in _request_inputs(handler)):
                statuses |= {400, 422}  # Litestar documents a 400 for any parameter: ours is the shape it has
            if handler.http_methods & {"POST", "PUT", "PATCH", "DELETE"}:
                statuses.add(409)
            documented = dict(handler.responses or {})
            for status in sorted(statuses):
                documented.setdefault(status, ERRORS[status])
            handler.responses = documented


def _request_inputs(handler: Any) -> list[str]:
    """The handler's parameters a request supplies (its query, path, header and body), not injected ones."""
    skip = {"self", "request", "services", "state", "scope", "socket", "headers", "cookies"}
    return [name for name in handler.parsed_fn_signature.parameters if name not in skip]


def close_request_bodies(document: OpenAPI) -> None:
    """A body with a field the operation does not know is refused (422 `request.invalid`): the schemas of request
    bodies, and of the objects inside them, say so with `additionalProperties: false`. Answers stay open, so
    that a client tolerates a field added later."""
    schemas = document.components.schemas or {}
    seen: set[str] = set()

    def close(node: Any) -> None:
        if isinstance(node, Reference):
            name = node.ref.removeprefix("#/components/schemas/")
            if name in seen or name not in schemas:
                return
            seen.add(name)
            node = schemas[name]
            if node.type == OpenAPIType.OBJECT and node.properties is not None:
                node.additional_properties = False
        if isinstance(node, Schema):
            for child in (*(node.properties or {}).values(), node.items, *(node.one_of or ()), *(node.any_of or ())):
                close(child)

    for item in (document.paths or {}).values():
        for method in ("post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            body = operation.request_body if operation is not None else None
            if isinstance(body, RequestBody):
                for media in body.content.values():
                    close(media.schema)
