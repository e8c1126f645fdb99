from datetime import datetime
from typing import Annotated

import msgspec

from backend.cashier.tables import OrderStatus, RefundStatus
from backend.core.schema import Struct


class TillOrderCreate(Struct):
    store_id: Annotated[int, msgspec.Meta(gt=0, le=2**53)]
    amount_fen: Annotated[int, msgspec.Meta(gt=0, le=10**12)]
    auth_code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    idempotency_key: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_.:-]{8,64}$")]
    member_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{18}$")] | None = None
    points_to_redeem: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 0
    till_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,32}$")] | None = None
    # A referral poster's scene the cashier scanned: the payer enrolled by this payment is the sharer's referral.
    scene: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")] | None = None


class LandingOut(Struct):
    text: str
    url: str | None


class OrderOut(Struct):
    id: int
    store_id: int
    amount_fen: int
    paid_fen: int
    points_redeemed: int
    status: OrderStatus
    out_trade_no: str
    member_id: int | None
    member_enrolled: bool
    points_earned: int
    created_at: datetime
    paid_at: datetime | None
    landing: LandingOut | None


class OrdersPage(Struct):
    items: list[OrderOut]
    next_cursor: str | None


class StorePaymentCreate(Struct):
    amount_fen: Annotated[int, msgspec.Meta(gt=0, le=10**12)]
    points_to_redeem: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 0


class PayParams(Struct):
    """Exactly what wx.requestPayment takes: appId, timeStamp, nonceStr, package, signType, paySign."""

    app_id: str
    time_stamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str


class StorePaymentOut(Struct):
    order_id: int
    out_trade_no: str
    status: OrderStatus
    amount_fen: int
    paid_fen: int
    points_redeemed: int
    pay_params: PayParams


class RefundCreate(Struct):
    amount_fen: Annotated[int, msgspec.Meta(gt=0, le=10**12)]
    idempotency_key: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_.:-]{8,64}$")]
    reason: Annotated[str, msgspec.Meta(max_length=80)] = ""


class RefundOut(Struct):
    refund_id: int
    order_id: int
    out_refund_no: str
    amount_fen: int
    status: RefundStatus
    points_reversed: int
    points_restored: int
    created_at: datetime
    settled_at: datetime | None
