"""Cursor paging, newest first: the cursor is the last id of the page before."""

from typing import Annotated

from litestar.params import QueryParameter

Limit = Annotated[int, QueryParameter(ge=1, le=100)]
Cursor = Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,18}$")]
