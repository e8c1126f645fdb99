"""One error shape for every failure: {"code", "message", "details"}."""

import logging
import re
import sqlite3
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from backend.core import metrics
from backend.core.postgres import UNAVAILABLE
from backend.core.requestid import request_id_of
from backend.core.resp import CommandError

logger = logging.getLogger(__name__)

HTTP_CODES = {
    400: ("request.bad_request", "The request could not be read."),
    401: ("auth.unauthenticated", "Sign in first: send Authorization: Bearer <accessToken>."),
    403: ("auth.forbidden", "This account may not do that."),
    404: ("request.not_found", "Nothing is here."),
    405: ("request.method_not_allowed", "That method is not allowed here."),
    413: ("request.too_large", "The request body is too large."),
    415: ("request.unsupported_media_type", "Send the body as JSON."),
    429: ("request.rate_limited", "Too many requests; slow down and retry later."),
    503: ("service.unavailable", "The service is not ready."),
}


class DomainError(Exception):
    """Root of all expected business failures. Never raised for bugs."""

    code: str = "domain.error"
    status_code: int = 400
    default_message: str = "The request cannot be carried out."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None, **context: object) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        self.context = context
        super().__init__(self.message)


class NotFound(DomainError):
    code = "request.not_found"
    status_code = 404
    default_message = "Nothing is here."


class Forbidden(DomainError):
    code = "auth.forbidden"
    status_code = 403
    default_message = "This account may not do that."


class Unauthenticated(DomainError):
    code = "auth.unauthenticated"
    status_code = 401
    default_message = "Sign in first: send Authorization: Bearer <accessToken>."


class InvalidRequest(DomainError):
    """A request well-formed field by field whose values make no sense together (or no date)."""

    code = "request.invalid"
    status_code = 422
    default_message = "The request is not valid."


class RateLimited(DomainError):
    code = "request.rate_limited"
    status_code = 429
    default_message = "Too many requests; slow down and retry later."

    def __init__(self, message: str | None = None, *, retry_after: int, **context: object) -> None:
        super().__init__(message, details={"retryAfterSeconds": retry_after}, **context)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency is not answering: the request changed nothing it could not finish, and may be sent again."""

    code = "service.unavailable"
    status_code = 503
    default_message = "A dependency is not answering; retry shortly."
    retry_after = 1


class KVUnavailable(Unavailable):
    code = "kv.unavailable"
    default_message = "The shared store (Redis) is not answering; retry shortly."


class DatabaseUnavailable(Unavailable):
    code = "database.unavailable"
    default_message = "The database is not answering; retry shortly."


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}


def domain_error_handler(_: Request, exc: DomainError) -> Response[dict[str, Any]]:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, (RateLimited, Unavailable)) else None
    if isinstance(exc, Unavailable):
        metrics.ERRORS.labels("kv" if isinstance(exc, KVUnavailable) else "database").inc()
    return Response(error_body(exc.code, exc.message, exc.details), status_code=exc.status_code, headers=headers)


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")


def _field_name(key: str | None, message: str) -> str | None:
    # msgspec names an unknown field in its message, and a nested path as "- at `$.a.b`"
    if unknown := _UNKNOWN_FIELD.search(message):
        return unknown.group(1)
    if "`$." in message:
        return message.rsplit("`$.", 1)[1].rstrip("`")
    return key if key and key != "data" else None


def validation_error_handler(_: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    fields = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            message = str(item.get("message", ""))
            fields.append(
                {"field": _field_name(item.get("key"), message), "source": item.get("source"), "message": message}
            )
    if not fields:
        fields.append({"field": None, "source": "body", "message": exc.detail})
    return Response(error_body("request.invalid", "The request is not valid.", {"fields": fields}), status_code=422)


def http_error_handler(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    if exc.status_code >= 500 and exc.status_code != 503:
        return internal_error_handler(request, exc)
    code, message = HTTP_CODES.get(exc.status_code, ("request.error", exc.detail))
    if exc.status_code == 400 and "JSON" in str(exc.detail).upper():
        code, message = "request.malformed_json", "The request body is not valid JSON."
    return Response(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def _dependency_of(error: BaseException) -> str | None:
    """Which dependency failed, when the error is one of theirs: the KV (Redis) or the database."""
    if isinstance(error, CommandError):
        return "kv"
    if isinstance(error, sqlite3.Error | asyncpg.PostgresError | asyncpg.InterfaceError):
        return "database"
    return None


def internal_error_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, CommandError):
        return domain_error_handler(request, KVUnavailable())
    if isinstance(exc, UNAVAILABLE):
        logger.warning("the database did not answer", extra={"error": repr(exc), "path": request.url.path})
        return domain_error_handler(request, DatabaseUnavailable())
    if (dependency := _dependency_of(exc)) is not None:
        metrics.ERRORS.labels(dependency).inc()
    request_id = request_id_of(request.scope)
    logger.error("unhandled error", exc_info=exc, extra={"request_id": request_id, "path": request.url.path})
    return Response(
        error_body(
            "internal.error",
            "Something went wrong on our side; the request id helps us find it.",
            {"requestId": request_id},
        ),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
