from datetime import datetime
from typing import Annotated

import msgspec

from backend.core.paging import Id
from backend.core.schema import Struct
from backend.stores.tables import StaffRole

StoreCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,32}$")]
Username = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{2,63}$")]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
ShortText = Annotated[str, msgspec.Meta(max_length=100)]


class StoreCreate(Struct):
    code: StoreCode
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    address: Annotated[str, msgspec.Meta(max_length=255)] = ""
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    opening_hours: ShortText = ""
    points_per_yuan: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 1
    # Mall orders are delivered within this many metres of the store's geo point (which it then needs); 0: pickup only.
    delivery_radius_m: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    landing_text: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    # Shown besides the landing text only to a payer whom the payment made a member ("you are a member now").
    welcome_text: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    landing_url: Annotated[str, msgspec.Meta(max_length=500, pattern=r"^(|https://\S+|/\S*)$")] = ""


class StoreOut(Struct):
    id: int
    code: str
    name: str
    address: str
    latitude: float | None
    longitude: float | None
    opening_hours: str


class StoreDetailOut(StoreOut):
    points_per_yuan: int
    delivery_radius_m: int
    landing_text: str
    welcome_text: str
    landing_url: str
    active: bool
    created_at: datetime


class StaffCreate(Struct):
    username: Username
    password: Password
    role: StaffRole
    store_ids: Annotated[list[Id], msgspec.Meta(max_length=500)] = []
    display_name: Annotated[str, msgspec.Meta(max_length=64)] = ""


class StaffOut(Struct):
    id: int
    username: str
    role: StaffRole
    store_ids: list[int]
    display_name: str = ""


class StaffLogin(Struct):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class StaffLoginOut(Struct):
    access_token: str
    expires_in: int
    staff: StaffOut
