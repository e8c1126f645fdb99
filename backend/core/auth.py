"""Access tokens: short-lived HS256 JWTs naming a member or a staff account."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jwt
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide

from backend.core.errors import Unauthenticated

ISSUER = "mall"
VERIFIED_CACHE_SIZE = 4096


class PrincipalKind(str, Enum):
    member = "member"
    staff = "staff"


@dataclass(frozen=True, slots=True)
class Claims:
    kind: PrincipalKind
    subject_id: int
    version: int


class TokenIssuer:
    def __init__(self, secret_key: str, *, member_ttl: int, staff_ttl: int) -> None:
        self._key = secret_key
        self._ttl = {PrincipalKind.member: member_ttl, PrincipalKind.staff: staff_ttl}
        # A till sends the same token with every request: its signature is checked once, its expiry every time.
        self._verified: dict[str, tuple[Claims, int]] = {}

    def ttl(self, kind: PrincipalKind) -> int:
        return self._ttl[kind]

    def issue(self, kind: PrincipalKind, subject_id: int, *, version: int = 0) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": f"{kind.value}:{subject_id}",
            "ver": version,
            "iat": now,
            "exp": now + self._ttl[kind],
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def decode(self, token: str) -> Claims:
        if (verified := self._verified.get(token)) is not None:
            if time.time() < verified[1]:
                return verified[0]
            del self._verified[token]
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "iat", "sub", "iss"]}
            )
            kind, _, subject = str(claims["sub"]).partition(":")
            decoded = Claims(PrincipalKind(kind), int(subject), int(claims.get("ver", 0)))
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The access token has expired; sign in again.") from None
        except (jwt.InvalidTokenError, ValueError):
            raise Unauthenticated("The access token is not valid.") from None
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (decoded, int(claims["exp"]))
        return decoded


def bearer_claims(connection: ASGIConnection, tokens: TokenIssuer) -> Claims:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    return tokens.decode(token.strip())


# Who may call a handler, settled before its request is read -----------------------------------------

_PRINCIPAL = "principal"
_NO_CHECK = object()


def caller(check: Callable[[Request, Any], Awaitable[Any]]) -> Provide:
    """A controller's `member` or `staff` dependency. `check(request, services)` (who the token names, and what
    their role allows) runs in `authorise`, before the request's body and parameters are read: a request without
    the right token or role is 401 or 403, whatever else is wrong with it. The handler receives what it answered.
    A layer that sets a `before_request` of its own replaces `authorise` for its handlers: their `member` or
    `staff` is then missing, and the request fails (500), never unchecked."""

    # It takes `services` (unused) so that Litestar resolves it after `services`, on its own: two dependencies
    # in one batch would cost a task group on every request.
    def resolved(request: Request, services: NamedDependency[Any]) -> Any:
        return request.scope["state"][_PRINCIPAL]

    resolved.check = check  # type: ignore[attr-defined]
    return Provide(resolved, sync_to_thread=False)


def authorise(services: Any) -> Callable[[Request], Awaitable[None]]:
    """The app's `before_request`: runs the `caller` check of a handler that takes `member` or `staff`."""
    checks: dict[Any, Any] = {}  # by handler function: its check, or _NO_CHECK

    def check_of(handler: Any) -> Any:
        parameters = handler.parsed_fn_signature.parameters
        dependencies = handler.resolve_dependencies()
        for name in ("member", "staff"):
            if name in parameters and name in dependencies:
                return getattr(dependencies[name].dependency, "check", _NO_CHECK)
        return _NO_CHECK

    async def before_request(request: Request) -> None:
        handler = request.scope["route_handler"]
        if (check := checks.get(handler.fn)) is None:
            check = checks[handler.fn] = check_of(handler)
        if check is not _NO_CHECK:
            request.scope["state"][_PRINCIPAL] = await check(request, services)

    return before_request
