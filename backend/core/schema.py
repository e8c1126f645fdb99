from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Base for every request/response body."""


class Page(Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
