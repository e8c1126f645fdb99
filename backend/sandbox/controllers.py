from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from backend.sandbox import service
from backend.sandbox.schemas import (
    WECHAT_ID_PATTERN,
    LoginCodeCreate,
    LoginCodeOut,
    PaymentCodeCreate,
    PaymentCodeOut,
    PhoneCodeCreate,
    PhoneCodeOut,
)
from backend.settings import Settings


class SandboxWeChatController(Controller):
    """Present only when PAYMENT_PROVIDER=sandbox: stands in for the phone and the WeChat runtime."""

    path = "/api/v1/sandbox/wechat"
    tags = ["Sandbox"]

    @post("/login-codes", operation_id="CreateSandboxLoginCode")
    async def create_login_code(self, data: JSONBody[LoginCodeCreate]) -> LoginCodeOut:
        row = await service.issue_login_code(openid=data.openid, unionid=data.unionid)
        return LoginCodeOut(code=row.code, openid=row.openid, unionid=row.unionid,
                            expires_in_seconds=service.LOGIN_CODE_TTL_SECONDS)

    @post("/phone-codes", operation_id="CreateSandboxPhoneCode")
    async def create_phone_code(self, data: JSONBody[PhoneCodeCreate],
                                settings: NamedDependency[Settings]) -> PhoneCodeOut:
        code = await service.issue_phone_code(phone=data.phone, country_code=data.country_code,
                                               app_id=data.appid or settings.wechat_app_id)
        return PhoneCodeOut(code=code, expires_in_seconds=service.LOGIN_CODE_TTL_SECONDS)


class SandboxWalletController(Controller):
    """The shopper's WeChat wallet in the sandbox: it shows payment codes that pay as its owner."""

    path = "/api/v1/sandbox/wallets"
    tags = ["Sandbox"]

    @post("/{openid:str}/payment-codes", operation_id="CreateSandboxPaymentCode")
    async def create_payment_code(
        self,
        openid: Annotated[str, PathParameter(pattern=WECHAT_ID_PATTERN)],
        data: JSONBody[PaymentCodeCreate],
    ) -> PaymentCodeOut:
        code = await service.issue_payment_code(openid=openid, scenario=data.scenario)
        return PaymentCodeOut(auth_code=code, expires_in_seconds=service.PAYMENT_CODE_TTL_SECONDS)
