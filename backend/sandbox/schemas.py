from typing import Annotated

import msgspec

from backend.core.schema import Struct
from backend.sandbox.tables import SandboxScenario

WECHAT_ID_PATTERN = r"^[0-9A-Za-z_-]{6,64}$"
WeChatId = Annotated[str, msgspec.Meta(pattern=WECHAT_ID_PATTERN)]


class LoginCodeCreate(Struct):
    openid: WeChatId | None = None
    unionid: WeChatId | None = None


class LoginCodeOut(Struct):
    code: str
    openid: str
    unionid: str | None
    expires_in_seconds: int


class PhoneCodeCreate(Struct):
    phone: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5,15}$")]
    country_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,4}$")] = "86"
    appid: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{2,64}$")] | None = None


class PhoneCodeOut(Struct):
    code: str
    expires_in_seconds: int


class PaymentCodeCreate(Struct):
    scenario: SandboxScenario = SandboxScenario.success


class PaymentCodeOut(Struct):
    auth_code: str
    expires_in_seconds: int


class PaymentConfirm(Struct):
    deliver_notification: bool = True  # false: the notification is lost on the way, as happens


class PaymentConfirmOut(Struct):
    out_trade_no: str
    transaction_id: str
    trade_state: str
    notify_status: int | None  # what our notify endpoint answered; None when it was not delivered
