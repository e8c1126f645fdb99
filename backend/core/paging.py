"""Cursor paging, newest first: the cursor is the last id of the page before."""

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import msgspec
from litestar.params import PathParameter, QueryParameter

from backend.core.clock import business_day, day_bounds
from backend.core.errors import InvalidRequest

Limit = Annotated[int, QueryParameter(ge=1, le=100)]
Cursor = Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,18}$")]

# A word searched for in a query: no control characters (PostgreSQL cannot hold a NUL, no text of ours has the others).
SEARCH_WORD = r"^[^\x00-\x1f\x7f]*$"

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


# A window of time in a query (`from`, `to`): business days (2026-12-01, `to` included) or RFC 3339 moments with
# their offset (`to` excluded).
_MOMENT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$"
)
Moment = Annotated[str | None, QueryParameter(pattern=_MOMENT)]
From = Annotated[str | None, QueryParameter(name="from", pattern=_MOMENT)]


def moment(text: str | None, *, end: bool) -> datetime | None:
    """A window's `from` (end=False) or `to` (end=True) as a UTC moment: a business day's start, or for `to` the
    next day's start (the day is included); a moment as it is given."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            since, until = day_bounds(date.fromisoformat(text))
            return until if end else since
        return datetime.fromisoformat(text.replace("z", "Z")).astimezone(UTC)
    except (ValueError, OverflowError):  # no such day, or one past what a moment can be
        raise InvalidRequest(
            details={"fields": [{"field": "to" if end else "from", "message": "no such day"}]}
        ) from None


EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # the days a report may ask about


def business_days(since: str | None, until: str | None, *, default_days: int, longest: int) -> tuple[date, date]:
    """A window of whole business days (`from` and `to` both included; default: the last `default_days`, today's
    among them), at most `longest` days."""
    today = business_day(datetime.now(UTC))
    try:
        last = date.fromisoformat(until[:10]) if until else today
        first = date.fromisoformat(since[:10]) if since else last - timedelta(days=default_days - 1)
    except ValueError:
        raise InvalidRequest(details={"fields": [{"field": "from", "message": "no such day"}]}) from None
    if not (EARLIEST_DAY <= first and last <= LATEST_DAY):
        raise InvalidRequest(f"Ask for days from {EARLIEST_DAY} to {LATEST_DAY}.")
    if first > last or (last - first).days >= longest:
        raise InvalidRequest(
            f"Ask for 1 to {longest} days, from before to.", details={"from": first.isoformat(), "to": last.isoformat()}
        )
    return first, last
