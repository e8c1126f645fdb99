from datetime import datetime
from typing import Annotated

import msgspec

from backend.core.idempotency import IdempotencyKey
from backend.core.paging import Id
from backend.core.schema import Struct
from backend.orders.tables import OrderStatus
from backend.payments.tables import RefundStatus

TillId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,32}$")]


class TillOrderCreate(Struct):
    store_id: Id
    amount_fen: Annotated[int, msgspec.Meta(gt=0, le=10**12)]
    auth_code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    idempotency_key: IdempotencyKey | None = None  # or the Idempotency-Key header
    member_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{18}$")] | None = None
    points_to_redeem: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 0
    coupon_id: Id | None = None  # the member's (named by memberCode)
    till_id: TillId | None = None
    # A referral poster's scene the cashier scanned: the payer enrolled by this payment is the sharer's referral.
    scene: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")] | None = None


class StorePaymentCreate(Struct):
    amount_fen: Annotated[int, msgspec.Meta(gt=0, le=10**12)]
    points_to_redeem: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 0
    coupon_id: Id | None = None


class PayParams(Struct):
    """Exactly what wx.requestPayment takes: appId, timeStamp, nonceStr, package, signType, paySign."""

    app_id: str
    time_stamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str

    @classmethod
    def of(cls, params: dict[str, str]) -> "PayParams":
        return cls(
            app_id=params["appId"],
            time_stamp=params["timeStamp"],
            nonce_str=params["nonceStr"],
            package=params["package"],
            sign_type=params["signType"],
            pay_sign=params["paySign"],
        )


class StorePaymentOut(Struct):
    order_id: int
    out_trade_no: str
    status: OrderStatus
    amount_fen: int
    payable_fen: int
    paid_fen: int
    points_redeemed: int
    pay_by: datetime
    pay_params: PayParams


class RefundCreate(Struct):
    amount_fen: Annotated[int, msgspec.Meta(gt=0, le=10**12)]
    idempotency_key: IdempotencyKey | None = None  # or the Idempotency-Key header
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
