"""Who the shopper is: a member token naming an active member."""

from typing import Any

from litestar import Request

from backend.core.auth import PrincipalKind, bearer_claims
from backend.core.errors import Forbidden, Unauthenticated
from backend.members import service


async def provide_current_member(request: Request) -> dict[str, Any]:
    claims = bearer_claims(request)
    if claims.kind != PrincipalKind.member:
        raise Forbidden("A staff token cannot be used here.")
    member = await service.get_active_member(claims.subject_id)
    if member is None:
        raise Unauthenticated("This member account is no longer active; sign in again.")
    return member
