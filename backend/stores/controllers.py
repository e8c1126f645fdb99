from typing import Annotated

from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from backend.core import openapi
from backend.core.auth import PrincipalKind, caller
from backend.core.errors import NotFound
from backend.core.paging import Cursor, Limit, PathId, before
from backend.core.ratelimit import client_address
from backend.core.responses import created
from backend.services import Services
from backend.stores import service
from backend.stores.auth import CurrentStaff, provide_current_staff, provide_hq_admin, provide_hq_or_manager
from backend.stores.schemas import (
    StaffCreate,
    StaffLogin,
    StaffLoginOut,
    StaffOut,
    StaffPage,
    StaffPatch,
    StoreCreate,
    StoreDetailOut,
    StoreOut,
    StorePatch,
)
from backend.stores.service import StaffRecord, StoreRecord
from backend.stores.tables import StaffRole


def store_out(store: StoreRecord) -> StoreOut:
    return StoreOut(
        id=store.id,
        code=store.code,
        name=store.name,
        address=store.address,
        latitude=store.latitude,
        longitude=store.longitude,
        opening_hours=store.opening_hours,
    )


def store_detail_out(store: StoreRecord) -> StoreDetailOut:
    return StoreDetailOut(
        id=store.id,
        code=store.code,
        name=store.name,
        address=store.address,
        latitude=store.latitude,
        longitude=store.longitude,
        opening_hours=store.opening_hours,
        points_per_yuan=store.points_per_yuan,
        delivery_radius_m=store.delivery_radius_m,
        landing_text=store.landing_text,
        welcome_text=store.welcome_text,
        landing_url=store.landing_url,
        active=store.active,
        created_at=store.created_at,
    )


def staff_out(staff: StaffRecord) -> StaffOut:
    return StaffOut(
        id=staff.id,
        username=staff.username,
        role=staff.role,
        store_ids=list(staff.store_ids),
        display_name=staff.display_name,
        active=staff.active,
        created_at=staff.created_at,
    )


class StaffAuthController(Controller):
    path = "/api/v1/auth/staff"
    tags = ["Auth"]

    @post("/login", operation_id="StaffLogin", status_code=200, responses=openapi.errors(401))
    async def login(
        self,
        services: NamedDependency[Services],
        request: Request,
        data: JSONBody[StaffLogin],
    ) -> StaffLoginOut:
        """Staff sign-in.

        A staff account signs in with its username and password; answers a bearer token (staffBearer).

        Repeated failures for one username, or from one address, are refused for a while (429).
        """
        staff = await service.login_staff(
            data.username,
            data.password,
            client=client_address(request.scope),
            kv=services.kv,
            failure_limit=services.settings.login_failure_limit,
            client_failure_limit=services.settings.login_failure_limit_per_client,
            window=services.settings.login_failure_window_seconds,
        )
        return StaffLoginOut(
            access_token=services.tokens.issue(PrincipalKind.staff, staff.id, version=staff.token_version),
            expires_in=services.tokens.ttl(PrincipalKind.staff),
            staff=staff_out(staff),
        )


class StoreController(Controller):
    path = "/api/v1/stores"
    tags = ["Stores"]

    @get(operation_id="ListStores")
    async def list_stores(self) -> list[StoreOut]:
        """List the stores.

        Every active store, for the mini-program's store list (no token needed)."""
        return [store_out(row) for row in await service.list_open_stores()]


class AdminStoreController(Controller):
    path = "/api/v1/admin"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @post("/stores", operation_id="CreateStore")
    async def create_store(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[StoreCreate]
    ) -> Response[StoreDetailOut]:
        """Create a store.

        HQ creates a store; `Location` is its page."""
        store = store_detail_out(await service.create_store(data))
        return created(store, f"/api/v1/cashier/stores/{store.id}")

    @post("/staff", operation_id="CreateStaff")
    async def create_staff(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[StaffCreate]
    ) -> Response[StaffOut]:
        """Create a staff account.

        HQ creates a staff account (cashier, store manager or HQ admin) for the stores it names; `Location` is
        its page."""
        account = await service.create_staff(data)
        return created(staff_out(account), f"{self.path}/staff/{account.id}")

    @get("/staff/{staff_id:int}", operation_id="GetStaff")
    async def get_staff(self, staff: NamedDependency[CurrentStaff], staff_id: PathId) -> StaffOut:
        """A staff account.

        A staff account's username, role and the stores it acts for."""
        account = await service.get_staff(staff_id)
        if account is None:
            raise NotFound("No such staff account.", staff_id=staff_id)
        return staff_out(account)

    @patch("/staff/{staff_id:int}", operation_id="UpdateStaff", responses=openapi.errors(404, 409))
    async def update_staff(
        self, staff: NamedDependency[CurrentStaff], staff_id: PathId, data: JSONBody[StaffPatch]
    ) -> StaffOut:
        """Edit a staff account.

        Deactivates (`active: false`) or reactivates it, changes its role or its stores, or resets its password.
        Deactivating it or resetting its password ends its sessions at once: its next request is 401. An HQ admin
        cannot deactivate or demote themselves (409 `staff.cannot_change_self`)."""
        return staff_out(await service.update_staff(staff_id, data, by_staff_id=staff.id))

    @patch("/stores/{store_id:int}", operation_id="UpdateStore", responses=openapi.errors(404, 422))
    async def update_store(
        self, staff: NamedDependency[CurrentStaff], store_id: PathId, data: JSONBody[StorePatch]
    ) -> StoreDetailOut:
        """Edit a store.

        Changes the fields sent; `active: false` deactivates the store: it leaves the store list, and its tills,
        mall and pickups take no new orders (its orders, members and points stay as they are)."""
        return store_detail_out(await service.update_store(store_id, data))

    @get("/stores", operation_id="ListAllStores", dependencies={"staff": caller(provide_hq_or_manager)})
    async def list_stores(self, staff: NamedDependency[CurrentStaff]) -> list[StoreDetailOut]:
        """Every store, open or not.

        HQ reads every store; a store manager their own."""
        return [store_detail_out(row) for row in await service.list_stores(staff.scope)]

    @get("/staff", operation_id="ListStaff", dependencies={"staff": caller(provide_hq_or_manager)})
    async def list_staff(
        self,
        staff: NamedDependency[CurrentStaff],
        role: Annotated[StaffRole | None, QueryParameter()] = None,
        active: Annotated[bool | None, QueryParameter()] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> StaffPage:
        """Staff accounts.

        Newest first, by role and whether active; HQ reads every account, a store manager those acting for their
        stores. `nextCursor` pages on."""
        rows = await service.list_staff(
            store_ids=staff.scope, role=role, active=active, before_id=before(cursor), limit=limit
        )
        return StaffPage(
            items=[staff_out(row) for row in rows],
            next_cursor=str(rows[-1].id) if len(rows) == limit else None,
        )


class CashierStoreController(Controller):
    path = "/api/v1/cashier"
    tags = ["Cashier"]
    dependencies = {"staff": caller(provide_current_staff)}

    @get("/me", operation_id="GetCurrentStaff")
    async def current_staff(self, staff: NamedDependency[CurrentStaff]) -> StaffOut:
        """The signed-in staff account.

        The signed-in staff account: role and the stores it acts for."""
        return StaffOut(id=staff.id, username=staff.username, role=staff.role, store_ids=sorted(staff.store_ids))

    @get("/stores/{store_id:int}", operation_id="GetTillStore")
    async def get_store(self, staff: NamedDependency[CurrentStaff], store_id: PathId) -> StoreDetailOut:
        """A store and its till settings.

        A store this staff account acts for, with its till settings; another store is 404."""
        staff.ensure_store(store_id)
        row = await service.get_store(store_id)
        if row is None:
            raise NotFound("No such store.")
        return store_detail_out(row)
