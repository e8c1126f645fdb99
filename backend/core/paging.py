"""Cursor paging, newest first: the cursor is the last id of the page before."""

from typing import Annotated

from litestar.params import QueryParameter

Limit = Annotated[int, QueryParameter(ge=1, le=100)]
Cursor = Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,18}$")]

# Every table's id is a Serial: 32 bits on PostgreSQL. A number past it names nothing, and must not be
# sent to the database, which refuses it as a parameter of that type.
ID_MAX = 2**31 - 1


def before(cursor: str | None) -> int | None:
    """The id a page starts before, within what an id can be."""
    return None if cursor is None else min(int(cursor), ID_MAX)
