"""Who the staff caller is, which stores they act for, and what their role allows."""

from dataclasses import dataclass

from litestar import Request
from litestar.di import NamedDependency

from backend.core.auth import PrincipalKind, bearer_claims
from backend.core.errors import Forbidden, NotFound, Unauthenticated
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

    def ensure_store(self, store_id: int) -> None:
        """Another store's objects do not exist for this caller."""
        if not self.acts_for(store_id):
            raise NotFound("No such store.", staff_id=self.id, store_id=store_id)


async def provide_current_staff(request: Request, services: NamedDependency[Services]) -> CurrentStaff:
    claims = bearer_claims(request, services.tokens)
    if claims.kind != PrincipalKind.staff:
        raise Forbidden("A member token cannot be used here.")
    staff = await service.recent_staff(claims.subject_id)
    if staff is None or not staff.active:
        raise Unauthenticated("This staff account is no longer active.")
    return CurrentStaff(id=staff.id, username=staff.username, role=staff.role, store_ids=frozenset(staff.store_ids))


async def provide_hq_admin(request: Request, services: NamedDependency[Services]) -> CurrentStaff:
    staff = await provide_current_staff(request, services)
    staff.require_role(StaffRole.hq_admin)
    return staff
