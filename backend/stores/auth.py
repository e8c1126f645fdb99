"""Who the staff caller is, which stores they act for, and what their role allows."""

from dataclasses import dataclass

from litestar import Request
from litestar.di import NamedDependency

from backend.audit import service as audit
from backend.core.auth import Claims, PrincipalKind, bearer_claims
from backend.core.errors import Forbidden, NotFound, Unauthenticated
from backend.core.ratelimit import client_address
from backend.services import Services
from backend.stores import service
from backend.stores.tables import StaffRole


@dataclass(frozen=True, slots=True)
class CurrentStaff:
    id: int
    username: str
    role: StaffRole
    store_ids: frozenset[int]

    @property
    def is_hq(self) -> bool:
        return self.role == StaffRole.hq_admin

    def require_role(self, *roles: StaffRole) -> None:
        if self.role not in roles:
            raise Forbidden("This staff role may not do that.", role=self.role)

    def acts_for(self, store_id: int) -> bool:
        return self.is_hq or store_id in self.store_ids

    @property
    def scope(self) -> frozenset[int] | None:
        """The stores whose rows this caller reads: None for HQ (every store)."""
        return None if self.is_hq else self.store_ids

    def ensure_store(self, store_id: int) -> None:
        """Another store's objects do not exist for this caller."""
        if not self.acts_for(store_id):
            raise NotFound("No such store.", staff_id=self.id, store_id=store_id)


async def provide_current_staff(request: Request, services: NamedDependency[Services]) -> CurrentStaff:
    return await staff_of(bearer_claims(request, services.tokens), request)


async def staff_of(claims: Claims, request: Request) -> CurrentStaff:
    """The staff account a token names, while it is active and the token is of its current sessions; the actor of
    the request's audit entries from then."""
    if claims.kind != PrincipalKind.staff:
        raise Forbidden("A member token cannot be used here.")
    staff = await service.recent_staff(claims.subject_id)
    if staff is None or not staff.active:
        raise Unauthenticated("This staff account is no longer active.")
    if claims.version != staff.token_version:
        raise Unauthenticated("This session has ended (the password was reset); sign in again.")
    audit.acting(audit.Actor(staff.id, staff.username, staff.role.value, client_address(request.scope)))
    return CurrentStaff(id=staff.id, username=staff.username, role=staff.role, store_ids=frozenset(staff.store_ids))


async def provide_hq_admin(request: Request, services: NamedDependency[Services]) -> CurrentStaff:
    staff = await provide_current_staff(request, services)
    staff.require_role(StaffRole.hq_admin)
    return staff


async def provide_hq_or_manager(request: Request, services: NamedDependency[Services]) -> CurrentStaff:
    """HQ, or a store manager (who reads their own stores' rows); a cashier is 403."""
    staff = await provide_current_staff(request, services)
    staff.require_role(StaffRole.hq_admin, StaffRole.store_manager)
    return staff
