"""Cursor paging, newest first: the cursor is the last id of the page before."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
from litestar.params import PathParameter, QueryParameter

Limit = Annotated[int, QueryParameter(ge=1, le=100)]
Cursor = Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,18}$")]

# Every table's id is a Serial: 32 bits on PostgreSQL. A number past it names nothing, and must not be
# sent to the database, which refuses it as a parameter of that type.
ID_MAX = 2**31 - 1
# An id as a request names it: in a body (`Id`), its path (`PathId`) or its query (`QueryId(name)`). Anything
# else is 422 request.invalid, never sent to the database.
Id = Annotated[int, msgspec.Meta(gt=0, le=ID_MAX)]
PathId = Annotated[int, PathParameter(gt=0, le=ID_MAX)]


def query_id(name: str) -> QueryParameter:
    """An optional id in the query string, under its camelCase `name`."""
    return QueryParameter(name=name, gt=0, le=ID_MAX)


def before(cursor: str | None) -> int | None:
    """The id a page starts before, within what an id can be."""
    return None if cursor is None else min(int(cursor), ID_MAX)


# Paging by a moment and an id (soonest deadline first, or expiring first): the cursor is the page before's last
# (moment, id), the moment in whole microseconds since the epoch, exact (no float on the way).
TimeCursor = Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,17}_[0-9]{1,18}$")]
_EPOCH, _MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)


def time_cursor(moment: datetime, row_id: int) -> str:
    return f"{(moment - _EPOCH) // _MICROSECOND}_{row_id}"


def after_time(cursor: str | None) -> tuple[datetime, int] | None:
    """The (moment, id) a page starts after."""
    if cursor is None:
        return None
    micros, _, row_id = cursor.partition("_")
    return _EPOCH + int(micros) * _MICROSECOND, min(int(row_id), ID_MAX)
