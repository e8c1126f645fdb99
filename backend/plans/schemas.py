from datetime import datetime
from typing import Annotated

import msgspec

from backend.cashier.schemas import PayParams
from backend.core.paging import Id
from backend.core.schema import Struct
from backend.membership.schemas import Multiplier
from backend.orders.schemas import OrderOut

PlanCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,32}$")]
IdempotencyKey = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_.:-]{8,64}$")]


class PlanCreate(Struct):
    code: PlanCode
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
    price_fen: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    days: Annotated[int, msgspec.Meta(ge=1, le=3660)]
    points_multiplier_percent: Multiplier = 100
    member_price: bool = True
    monthly_coupon_template_ids: Annotated[list[Id], msgspec.Meta(max_length=10)] | None = None


class PlanOut(Struct):
    id: int
    code: str
    title: str
    price_fen: int
    days: int
    points_multiplier_percent: int
    member_price: bool
    monthly_coupon_template_ids: list[int]
    on_sale: bool
    created_at: datetime


class PlansOut(Struct):
    items: list[PlanOut]


class PurchaseCreate(Struct):
    plan_id: Id
    idempotency_key: IdempotencyKey
    store_id: Id | None = None  # the store it is sold at (for its reports); default: where the member enrolled


class PurchaseOut(Struct):
    order: OrderOut
    pay_params: PayParams | None  # for wx.requestPayment; null once the order is no longer open
    plan_id: int
    status: str
    period_from: datetime | None
    period_until: datetime | None


class PurchasesPage(Struct):
    items: list[PurchaseOut]
    next_cursor: str | None
