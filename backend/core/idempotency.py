"""Idempotency keys: what a request names itself by, and what a replay of it must match (a digest of
everything it asked for)."""

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from litestar.exceptions import ValidationException

KEY_PATTERN = r"^[0-9A-Za-z_.:-]{8,64}$"
IdempotencyKey = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]
_KEY = re.compile(KEY_PATTERN)


def idempotency_key(headers: Mapping[str, str], in_body: str | None) -> str:
    """The request's key, from its body's `idempotencyKey` or its `Idempotency-Key` header (the same value when
    both are sent); 422 when there is none, when the header's is not a key, or when the two differ."""
    header = headers.get("idempotency-key")
    if header is None:
        if in_body is None:
            raise _invalid("body", "Send an idempotencyKey in the body or an Idempotency-Key header.")
        return in_body
    if not _KEY.match(header):
        raise _invalid("header", f"Expected `str` matching regex {KEY_PATTERN!r}")
    if in_body is not None and in_body != header:
        raise _invalid("header", "The Idempotency-Key header and the body's idempotencyKey differ.")
    return header


def _invalid(source: str, message: str) -> ValidationException:
    return ValidationException(extra=[{"key": "idempotencyKey", "source": source, "message": message}])


# json.dumps builds a new encoder for every call with options; this one is built once and writes the same text.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)


def request_hash(**request: Any) -> str:
    """The same request always hashes the same, whatever the order of its fields."""
    return hashlib.sha256(_CANONICAL.encode(request).encode()).hexdigest()
