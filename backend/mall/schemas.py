from datetime import datetime
from typing import Annotated

import msgspec

from backend.cashier.schemas import PayParams, RefundOut
from backend.core.idempotency import IdempotencyKey
from backend.core.paging import Id
from backend.core.schema import Struct
from backend.mall.tables import Fulfilment
from backend.orders.schemas import OrderOut

MAX_LINES = 50
Quantity = Annotated[int, msgspec.Meta(ge=1, le=999)]


class LineIn(Struct):
    sku_id: Id
    quantity: Quantity


class AddressIn(Struct):
    """Where a delivery goes; its point (from wx.chooseLocation) is measured against the store's radius."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    phone: Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9][0-9 -]{4,18}[0-9]$")]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class MallOrderCreate(Struct):
    """Prices are the server's: a price or amount in the body is an unknown field (422)."""

    store_id: Id
    lines: Annotated[list[LineIn], msgspec.Meta(min_length=1, max_length=MAX_LINES)]
    fulfilment: Fulfilment
    idempotency_key: IdempotencyKey
    address: AddressIn | None = None
    coupon_id: Id | None = None
    points_to_redeem: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] = 0


class MallOrderPlaced(Struct):
    order: OrderOut
    pay_params: PayParams | None  # for wx.requestPayment; null only on a replay when the order is no longer open
    pay_by: datetime  # unpaid by then, the order expires and its stock goes back


class MallOrdersPage(Struct):
    items: list[OrderOut]
    next_cursor: str | None


class RefundLineIn(Struct):
    line_id: Id
    quantity: Quantity


class MallRefundCreate(Struct):
    """No `lines`: every unit not refunded yet."""

    idempotency_key: IdempotencyKey | None = None
    lines: Annotated[list[RefundLineIn], msgspec.Meta(min_length=1, max_length=MAX_LINES)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=80)] = ""


class RefundLineOut(Struct):
    line_id: int
    quantity: int


class MallRefundOut(RefundOut):
    """A refund as the till shows one, with the units of each line it gives back."""

    lines: list[RefundLineOut]
