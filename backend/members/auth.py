"""Who the shopper is: a member token naming an active member."""

from dataclasses import dataclass

from litestar import Request
from litestar.di import NamedDependency

from backend.core.auth import PrincipalKind, bearer_claims
from backend.core.errors import Forbidden, Unauthenticated
from backend.members import service
from backend.services import Services


@dataclass(frozen=True, slots=True)
class CurrentMember:
    id: int


async def provide_current_member(request: Request, services: NamedDependency[Services]) -> CurrentMember:
    member = await provide_signed_member(request, services)
    await ensure_active(member.id)
    return member


async def provide_signed_member(request: Request, services: NamedDependency[Services]) -> CurrentMember:
    """The member the token names, not yet looked up: for a handler that can refuse without the database
    (a sold-out flash sale) and calls `ensure_active` before it writes anything."""
    claims = bearer_claims(request, services.tokens)
    if claims.kind != PrincipalKind.member:
        raise Forbidden("A staff token cannot be used here.")
    return CurrentMember(id=claims.subject_id)


async def ensure_active(member_id: int) -> None:
    if not await service.is_active_member(member_id):
        raise Unauthenticated("This member account is no longer active; sign in again.")
