"""The answer to a request that made something: 201, with the address to read it at."""

from typing import TypeVar

from litestar import Response

T = TypeVar("T")


def created(content: T, location: str) -> Response[T]:
    return Response(content, status_code=201, headers={"Location": location})
