from datetime import date, datetime
from typing import Annotated

import msgspec

from backend.cashier.schemas import PayParams
from backend.core.paging import Id
from backend.core.schema import Struct
from backend.groupbuy.tables import (
    MAX_GROUP_SIZE,
    MAX_GROUP_TTL_MINUTES,
    MIN_GROUP_TTL_MINUTES,
    GroupStatus,
    SeatStatus,
)
from backend.orders.tables import OrderStatus
from backend.payments.tables import RefundStatus
from backend.stores.schemas import StoreOut

Fen = Annotated[int, msgspec.Meta(gt=0, le=10**10)]
# An uploaded or bundled image, named by its path under the image store; never a URL to fetch.
ImagePath = Annotated[
    str, msgspec.Meta(max_length=200, pattern=r"^(|[0-9A-Za-z_-][0-9A-Za-z_.-]*(/[0-9A-Za-z_-][0-9A-Za-z_.-]*)*)$")
]


class CampaignCreate(Struct):
    """The product is a SKU of the catalogue (`skuId`, its title and spec the product name unless one is given),
    or free text (`productName`)."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    price_fen: Fen
    original_price_fen: Fen
    group_size: Annotated[int, msgspec.Meta(ge=2, le=MAX_GROUP_SIZE)]
    group_ttl_minutes: Annotated[int, msgspec.Meta(ge=MIN_GROUP_TTL_MINUTES, le=MAX_GROUP_TTL_MINUTES)]
    stock: Annotated[int, msgspec.Meta(ge=1, le=10**7)]
    per_member_limit: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    starts_at: datetime
    ends_at: datetime
    pickup_store_ids: Annotated[list[Id], msgspec.Meta(max_length=5000)]
    pickup_date: date
    payment_window_minutes: Annotated[int, msgspec.Meta(ge=1, le=24 * 60)] = 15
    virtual_fill: bool = False
    # With virtualFill: the share of a group's seats that must be paid by its deadline for it to succeed.
    virtual_fill_percent: Annotated[int, msgspec.Meta(ge=50, le=100)] = 80
    product_image: ImagePath = ""
    product_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    sku_id: Id | None = None


class CampaignPatch(Struct):
    """What HQ changes on a campaign: its title, a later end, or `closed` (true: no new groups from now, the groups
    forming run to their deadlines; false: open again)."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | msgspec.UnsetType = msgspec.UNSET
    ends_at: datetime | msgspec.UnsetType = msgspec.UNSET
    closed: bool | msgspec.UnsetType = msgspec.UNSET


class CampaignOut(Struct):
    id: int
    title: str
    product_name: str
    product_image: str
    sku_id: int | None
    price_fen: int
    original_price_fen: int
    group_size: int
    group_ttl_minutes: int
    payment_window_minutes: int
    stock: int
    stock_left: int
    per_member_limit: int
    starts_at: datetime
    ends_at: datetime
    pickup_date: date
    pickup_stores: list[StoreOut]
    virtual_fill: bool
    virtual_fill_percent: int
    created_at: datetime
    closed_at: datetime | None = None  # closed early by HQ


class CampaignCountsOut(Struct):
    groups_forming: int
    groups_succeeded: int
    groups_failed: int
    seats_paid: int
    units_sold: int


class AdminCampaignOut(CampaignOut):
    counts: CampaignCountsOut | None = None


class AdminCampaignsPage(Struct):
    items: list[AdminCampaignOut]
    next_cursor: str | None


class SeatCreate(Struct):
    pickup_store_id: Id
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    coupon_id: Id | None = None


class GroupMemberOut(Struct):
    nickname: str
    avatar_url: str
    virtual: bool = False  # an empty seat of a group that succeeded by virtual fill: nobody, nothing sold


class GroupOut(Struct):
    id: int
    campaign_id: int
    status: GroupStatus
    group_size: int
    seats_taken: int
    seats_left: int
    seats_paid: int
    virtual_seats: int  # empty seats counted by virtual fill; 0 unless the campaign allows it
    expires_at: datetime
    members: list[GroupMemberOut]


class SeatOut(Struct):
    id: int  # the seat's order
    group_id: int
    campaign_id: int
    pickup_store_id: int
    quantity: int
    amount_fen: int
    status: SeatStatus
    payment_status: OrderStatus
    paid_fen: int
    refunded_fen: int
    pay_by: datetime
    out_trade_no: str
    created_at: datetime
    group_status: GroupStatus
    group_virtual_seats: int  # the group succeeded with this many empty, virtual seats
    pickup_code: str | None = None  # only ever shown to the seat's own member (and the till that scans it)
    picked_up_at: datetime | None = None
    pay_params: PayParams | None = None


class GroupsPage(Struct):
    items: list[GroupOut]
    next_cursor: str | None


class SeatsPage(Struct):
    items: list[SeatOut]
    next_cursor: str | None = None


class SeatTaken(Struct):
    group: GroupOut
    order: SeatOut


class PickupCreate(Struct):
    store_id: Id
    pickup_code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class SeatRefundCreate(Struct):
    reason: Annotated[str, msgspec.Meta(max_length=80)] = ""


class SeatRefundOut(Struct):
    refund_id: int
    order_id: int
    out_refund_no: str
    amount_fen: int
    reason: str  # group_failed | after_success | late_payment
    status: RefundStatus
    created_at: datetime
    settled_at: datetime | None


class DemandRow(Struct):
    store_id: int
    store_code: str
    store_name: str
    pickup_date: date
    firm_units: int
    tentative_units: int
    picked_up_units: int
    virtual_seats: int  # empty seats of groups led from this store that succeeded by virtual fill


class DemandTotals(Struct):
    firm_units: int
    tentative_units: int
    picked_up_units: int
    virtual_seats: int


class DemandOut(Struct):
    campaign_id: int
    product_name: str
    pickup_date: date
    rows: list[DemandRow]
    totals: DemandTotals
