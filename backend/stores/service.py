"""Stores, staff accounts and staff sign-in."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backend.core.db import Prepared, is_unique_violation, write_transaction
from backend.core.kv import KV
from backend.core.ratelimit import release_attempt, reserve_attempt
from backend.core.recent import Recent
from backend.stores.errors import (
    DeliveryNeedsLocation,
    InvalidCredentials,
    StoreCodeTaken,
    StoresRequired,
    TooManyLoginFailures,
    UnknownStores,
    UsernameTaken,
)
from backend.stores.passwords import hash_password, verify_password
from backend.stores.schemas import StaffCreate, StoreCreate
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
    except Exception as error:
        if is_unique_violation(error):
            raise StoreCodeTaken(code=data.code) from None
        raise
    logger.info("store created", extra={"store_id": rows[0]["id"]})
    store = await get_store(rows[0]["id"])
    assert store is not None
    return store


_STORE = Prepared(lambda store_id: Store.select().where(Store.id == store_id).first())
_STAFF = Prepared(
    lambda staff_id: (
        Staff.select(Staff.id, Staff.username, Staff.role, Staff.display_name, Staff.active)
        .where(Staff.id == staff_id)
        .first()
    )
)
_STAFF_STORES = Prepared(
    lambda staff_id: StaffStore.select(StaffStore.store).where(StaffStore.staff == staff_id).order_by(StaffStore.store)
)

# Every till request names its staff account and store. Stores and staff are created, never edited here, so
# what was read is kept for RECENT_SECONDS in this process; a deactivation written elsewhere is honoured
# within that time, as a merged member's token is.
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
    except Exception as error:
        if is_unique_violation(error):
            raise UsernameTaken(username=data.username) from None
        raise
    logger.info("staff created", extra={"staff_id": staff_id})
    return StaffRecord(
        id=staff_id,
        username=data.username,
        role=StaffRole(data.role),
        display_name=data.display_name,
        active=True,
        store_ids=tuple(store_ids),
    )


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
    staff = await Staff.select().where(Staff.username == username).first()
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
