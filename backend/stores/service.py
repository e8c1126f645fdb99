"""Stores, staff accounts and staff sign-in."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backend.audit import service as audit
from backend.core.db import Prepared, hold, is_unique_violation, write_transaction
from backend.core.errors import NotFound
from backend.core.kv import KV
from backend.core.ratelimit import release_attempt, reserve_attempt
from backend.core.recent import Recent
from backend.core.schema import given
from backend.stores.errors import (
    CannotChangeSelf,
    DeliveryNeedsLocation,
    InvalidCredentials,
    StoreCodeTaken,
    StoresRequired,
    TooManyLoginFailures,
    UnknownStores,
    UsernameTaken,
)
from backend.stores.passwords import hash_password, verify_password
from backend.stores.schemas import StaffCreate, StaffPatch, StoreCreate, StorePatch
from backend.stores.tables import Staff, StaffRole, StaffStore, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreRecord:
    id: int
    code: str
    name: str
    address: str
    latitude: float | None
    longitude: float | None
    opening_hours: str
    points_per_yuan: int
    delivery_radius_m: int
    landing_text: str
    welcome_text: str
    landing_url: str
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StaffRecord:
    id: int
    username: str
    role: StaffRole
    display_name: str
    active: bool
    store_ids: tuple[int, ...]  # the stores the account acts for (none for HQ, which acts for every store)
    token_version: int = 0  # what its tokens must name (see Staff.token_version)
    created_at: datetime | None = None


async def create_store(data: StoreCreate) -> StoreRecord:
    if data.delivery_radius_m and (data.latitude is None or data.longitude is None):
        raise DeliveryNeedsLocation(details={"deliveryRadiusM": data.delivery_radius_m})
    try:
        async with write_transaction():
            rows = await Store.insert(
                Store(
                    code=data.code,
                    name=data.name,
                    address=data.address,
                    latitude=data.latitude,
                    longitude=data.longitude,
                    opening_hours=data.opening_hours,
                    points_per_yuan=data.points_per_yuan,
                    delivery_radius_m=data.delivery_radius_m,
                    landing_text=data.landing_text,
                    welcome_text=data.welcome_text,
                    landing_url=data.landing_url,
                )
            )
            await audit.record("store.create", "store", rows[0]["id"], after=given(data), store_id=rows[0]["id"])
    except Exception as error:
        if is_unique_violation(error):
            raise StoreCodeTaken(code=data.code) from None
        raise
    logger.info("store created", extra={"store_id": rows[0]["id"]})
    store = await get_store(rows[0]["id"])
    assert store is not None
    return store


_STORE = Prepared(lambda store_id: Store.select().where(Store.id == store_id).first())
_STAFF_COLUMNS = (
    Staff.id,
    Staff.username,
    Staff.role,
    Staff.display_name,
    Staff.active,
    Staff.token_version,
    Staff.created_at,
)
_STAFF = Prepared(lambda staff_id: Staff.select(*_STAFF_COLUMNS).where(Staff.id == staff_id).first())
_STAFF_STORES = Prepared(
    lambda staff_id: StaffStore.select(StaffStore.store).where(StaffStore.staff == staff_id).order_by(StaffStore.store)
)

# Every till request names its staff account and store, so what was read is kept for RECENT_SECONDS in this
# process. An edit made in this process is seen at once; one made by another worker within that time, as a
# merged member's token is.
RECENT_SECONDS = 2.0
_stores: Recent[int, StoreRecord | None] = Recent(RECENT_SECONDS)
_staff: Recent[int, StaffRecord | None] = Recent(RECENT_SECONDS)


async def get_store(store_id: int) -> StoreRecord | None:
    row = await _STORE.run(store_id)
    return StoreRecord(**row) if row is not None else None


async def recent_store(store_id: int) -> StoreRecord | None:
    """The store as read at most RECENT_SECONDS ago (for its earn rate and landing content on a checkout)."""
    return await _stores.read(store_id, lambda: get_store(store_id))


async def recent_staff(staff_id: int) -> StaffRecord | None:
    """The staff account with its stores, as read at most RECENT_SECONDS ago; None if none."""
    return await _staff.read(staff_id, lambda: get_staff(staff_id))


async def get_staff(staff_id: int) -> StaffRecord | None:
    """The staff account with its stores; None if none."""
    staff = await _STAFF.run(staff_id)
    if staff is None:
        return None
    return _staff_record(staff, await staff_store_ids(staff_id))


def _staff_record(row: dict[str, Any], store_ids: list[int]) -> StaffRecord:
    return StaffRecord(
        id=row["id"],
        username=row["username"],
        role=StaffRole(row["role"]),
        display_name=row["display_name"],
        active=row["active"],
        store_ids=tuple(store_ids),
        token_version=row["token_version"],
        created_at=row["created_at"],
    )


async def list_open_stores() -> list[StoreRecord]:
    return [StoreRecord(**row) for row in await Store.select().where(Store.active.eq(True)).order_by(Store.code)]


async def staff_store_ids(staff_id: int) -> list[int]:
    return [row["store"] for row in await _STAFF_STORES.run(staff_id)]


async def create_staff(data: StaffCreate) -> StaffRecord:
    store_ids = sorted(set(data.store_ids))
    if data.role != StaffRole.hq_admin and not store_ids:
        raise StoresRequired()
    password_hash = await hash_password(data.password)
    try:
        async with write_transaction():
            if store_ids:
                found = await Store.select(Store.id).where(Store.id.is_in(store_ids))
                missing = sorted(set(store_ids) - {row["id"] for row in found})
                if missing:
                    raise UnknownStores(details={"storeIds": missing})
            rows = await Staff.insert(
                Staff(
                    username=data.username, password_hash=password_hash, role=data.role, display_name=data.display_name
                )
            )
            staff_id = rows[0]["id"]
            if store_ids:
                await StaffStore.insert(*(StaffStore(staff=staff_id, store=store_id) for store_id in store_ids))
            await audit.record(
                "staff.create",
                "staff",
                staff_id,
                after={
                    "username": data.username,
                    "role": data.role,
                    "display_name": data.display_name,
                    "store_ids": store_ids,
                    "password": "(set)",
                },
            )
    except Exception as error:
        if is_unique_violation(error):
            raise UsernameTaken(username=data.username) from None
        raise
    logger.info("staff created", extra={"staff_id": staff_id})
    account = await get_staff(staff_id)
    assert account is not None
    return account


async def login_staff(
    username: str, password: str, *, client: str, kv: KV, failure_limit: int, client_failure_limit: int, window: int
) -> StaffRecord:
    """Check a password, at most `limit` unsuccessful tries per username and per client in a window."""
    username = username.strip().lower()
    counters = (
        (f"mall:stores:login_fail:user:{username}", failure_limit),
        (f"mall:stores:login_fail:client:{client}", client_failure_limit),
    )
    retry_after = await reserve_attempt(kv, counters, window=window)
    if retry_after is not None:
        raise TooManyLoginFailures(retry_after=retry_after, username=username)
    staff = await Staff.select(*_STAFF_COLUMNS, Staff.password_hash).where(Staff.username == username).first()
    usable = staff is not None and staff["active"]
    if not await verify_password(staff["password_hash"] if usable else None, password):
        logger.info("staff login failed", extra={"client": client})
        raise InvalidCredentials()
    await release_attempt(kv, counters)
    return _staff_record(staff, await staff_store_ids(staff["id"]))


async def store_codes(store_ids: list[int]) -> dict[int, str]:
    if not store_ids:
        return {}
    rows = await Store.select(Store.id, Store.code).where(Store.id.is_in(store_ids))
    return {row["id"]: row["code"] for row in rows}


async def update_store(store_id: int, data: StorePatch) -> StoreRecord:
    """HQ edits a store or deactivates it (its tills, mall and group-buy pickups stop taking orders)."""
    values = given(data)
    async with write_transaction():
        current = await get_store(store_id)
        if current is None:
            raise NotFound("No such store.", store_id=store_id)
        radius = values.get("delivery_radius_m", current.delivery_radius_m)
        latitude, longitude = values.get("latitude", current.latitude), values.get("longitude", current.longitude)
        if radius and (latitude is None or longitude is None):
            raise DeliveryNeedsLocation(details={"deliveryRadiusM": radius})
        await audit.update_row(Store, store_id, values, action="store.update", entity="store", store_id=store_id)
    _stores.forget(store_id)
    logger.info("store updated", extra={"store_id": store_id, "fields": sorted(values)})
    store = await get_store(store_id)
    assert store is not None
    return store


async def list_stores(store_ids: frozenset[int] | None) -> list[StoreRecord]:
    """Every store, open or not (None: every one; else those named), by code."""
    query = Store.select().order_by(Store.code)
    if store_ids is not None:
        query = query.where(Store.id.is_in(sorted(store_ids) or [0]))
    return [StoreRecord(**row) for row in await query]


async def list_staff(
    *, store_ids: frozenset[int] | None, role: StaffRole | None, active: bool | None, before_id: int | None, limit: int
) -> list[StaffRecord]:
    """Staff accounts, newest first; with `store_ids`, those acting for any of those stores (never HQ's)."""
    query = Staff.select(*_STAFF_COLUMNS).order_by(Staff.id, ascending=False).limit(limit)
    if store_ids is not None:
        query = query.where(
            Staff.id.is_in(StaffStore.select(StaffStore.staff).where(StaffStore.store.is_in(sorted(store_ids) or [0])))
        )
    if role is not None:
        query = query.where(Staff.role == role)
    if active is not None:
        query = query.where(Staff.active == active)
    if before_id is not None:
        query = query.where(Staff.id < before_id)
    rows = await query
    scopes: dict[int, list[int]] = {row["id"]: [] for row in rows}
    if scopes:
        for link in (
            await StaffStore.select(StaffStore.staff, StaffStore.store)
            .where(StaffStore.staff.is_in(list(scopes)))
            .order_by(StaffStore.store)
        ):
            scopes[link["staff"]].append(link["store"])
    return [_staff_record(row, scopes[row["id"]]) for row in rows]


async def update_staff(staff_id: int, data: StaffPatch, *, by_staff_id: int) -> StaffRecord:
    """HQ deactivates, re-roles, re-scopes or resets the password of a staff account. Deactivating it or resetting
    its password ends every session it has (its tokens name an older version); an HQ admin cannot deactivate or
    demote themselves (a chain must never be left without one by accident)."""
    password_hash = await hash_password(data.password) if isinstance(data.password, str) else None
    async with write_transaction():
        if await hold(Staff, staff_id, Staff.id) is None:
            raise NotFound("No such staff account.", staff_id=staff_id)
        current = await get_staff(staff_id)
        assert current is not None
        role = StaffRole(data.role) if isinstance(data.role, str) else current.role
        active = data.active if isinstance(data.active, bool) else current.active
        if staff_id == by_staff_id and (not active or role != current.role):
            raise CannotChangeSelf(staff_id=staff_id)
        store_ids = sorted(set(data.store_ids)) if isinstance(data.store_ids, list) else list(current.store_ids)
        if role == StaffRole.hq_admin:
            store_ids = []  # HQ acts for every store
        elif not store_ids:
            raise StoresRequired()
        if store_ids and store_ids != list(current.store_ids):
            found = await Store.select(Store.id).where(Store.id.is_in(store_ids))
            if missing := sorted(set(store_ids) - {row["id"] for row in found}):
                raise UnknownStores(details={"storeIds": missing})
        ends_sessions = password_hash is not None or (current.active and not active)
        values: dict[Any, Any] = {Staff.role: role, Staff.active: active}
        if isinstance(data.display_name, str):
            values[Staff.display_name] = data.display_name
        if password_hash is not None:
            values[Staff.password_hash] = password_hash
        if ends_sessions:
            values[Staff.token_version] = Staff.token_version + 1
        await Staff.update(values).where(Staff.id == staff_id)
        if store_ids != list(current.store_ids):
            await StaffStore.delete().where(StaffStore.staff == staff_id)
            if store_ids:
                await StaffStore.insert(*(StaffStore(staff=staff_id, store=store_id) for store_id in store_ids))
        after: dict[str, Any] = {
            "role": role,
            "active": active,
            "display_name": values.get(Staff.display_name, current.display_name),
            "store_ids": store_ids,
        }
        before: dict[str, Any] = {
            "role": current.role,
            "active": current.active,
            "display_name": current.display_name,
            "store_ids": list(current.store_ids),
        }
        if password_hash is not None:
            before["password"], after["password"] = None, "(reset)"
        if audit.changes(before, after):  # a patch that changed nothing records nothing
            await audit.record("staff.update", "staff", staff_id, before=before, after=after)
    _staff.forget(staff_id)
    logger.info("staff updated", extra={"staff_id": staff_id, "sessions_ended": ends_sessions})
    account = await get_staff(staff_id)
    assert account is not None
    return account
