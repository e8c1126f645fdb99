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
StoreName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Address = Annotated[str, msgspec.Meta(max_length=255)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
PointsPerYuan = Annotated[int, msgspec.Meta(ge=0, le=1000)]
DeliveryRadius = Annotated[int, msgspec.Meta(ge=0, le=100_000)]
LandingText = Annotated[str, msgspec.Meta(max_length=2000)]
LandingUrl = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^(|https://\S+|/\S*)$")]
DisplayName = Annotated[str, msgspec.Meta(max_length=64)]
StoreIds = Annotated[list[Id], msgspec.Meta(max_length=500)]


class StoreCreate(Struct):
    code: StoreCode
    name: StoreName
    address: Address = ""
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    opening_hours: ShortText = ""
    points_per_yuan: PointsPerYuan = 1
    # Mall orders are delivered within this many metres of the store's geo point (which it then needs); 0: pickup only.
    delivery_radius_m: DeliveryRadius = 0
    landing_text: LandingText = ""
    # Shown besides the landing text only to a payer whom the payment made a member ("you are a member now").
    welcome_text: LandingText = ""
    landing_url: LandingUrl = ""


class StorePatch(Struct):
    """A store's fields to change (its code never changes: printed store codes name it); `active: false`
    deactivates it."""

    name: StoreName | msgspec.UnsetType = msgspec.UNSET
    address: Address | msgspec.UnsetType = msgspec.UNSET
    latitude: Latitude | None | msgspec.UnsetType = msgspec.UNSET
    longitude: Longitude | None | msgspec.UnsetType = msgspec.UNSET
    opening_hours: ShortText | msgspec.UnsetType = msgspec.UNSET
    points_per_yuan: PointsPerYuan | msgspec.UnsetType = msgspec.UNSET
    delivery_radius_m: DeliveryRadius | msgspec.UnsetType = msgspec.UNSET
    landing_text: LandingText | msgspec.UnsetType = msgspec.UNSET
    welcome_text: LandingText | msgspec.UnsetType = msgspec.UNSET
    landing_url: LandingUrl | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


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
    store_ids: StoreIds = []
    display_name: DisplayName = ""


class StaffPatch(Struct):
    """What HQ changes on a staff account; `active: false` or a new `password` ends its sessions at once."""

    active: bool | msgspec.UnsetType = msgspec.UNSET
    role: StaffRole | msgspec.UnsetType = msgspec.UNSET
    store_ids: StoreIds | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET
    display_name: DisplayName | msgspec.UnsetType = msgspec.UNSET


class StaffOut(Struct):
    id: int
    username: str
    role: StaffRole
    store_ids: list[int]
    display_name: str = ""
    active: bool = True
    created_at: datetime | None = None


class StaffPage(Struct):
    items: list[StaffOut]
    next_cursor: str | None


class StaffLogin(Struct):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class StaffLoginOut(Struct):
    access_token: str
    expires_in: int
    staff: StaffOut
