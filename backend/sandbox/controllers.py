import json
from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from backend.sandbox import service
from backend.sandbox.errors import TradeNotFound, TradeNotPayable
from backend.sandbox.notify import transaction_payload
from backend.sandbox.schemas import (
    WECHAT_ID_PATTERN,
    LoginCodeCreate,
    LoginCodeOut,
    PaymentCodeCreate,
    PaymentCodeOut,
    PaymentConfirm,
    PaymentConfirmOut,
    PhoneCodeCreate,
    PhoneCodeOut,
)
from backend.services import Services


class SandboxWeChatController(Controller):
    """Present only when PAYMENT_PROVIDER=sandbox: stands in for the phone and the WeChat runtime."""

    path = "/api/v1/sandbox/wechat"
    tags = ["Sandbox"]

    @post("/login-codes", operation_id="CreateSandboxLoginCode")
    async def create_login_code(self, data: JSONBody[LoginCodeCreate]) -> LoginCodeOut:
        """Sandbox: a wx.login code.

        Sandbox only: a one-time wx.login code for an openid, as WeChat's runtime would hand the mini-program."""
        row = await service.issue_login_code(openid=data.openid, unionid=data.unionid)
        return LoginCodeOut(
            code=row.code, openid=row.openid, unionid=row.unionid, expires_in_seconds=service.LOGIN_CODE_TTL_SECONDS
        )

    @post("/phone-codes", operation_id="CreateSandboxPhoneCode")
    async def create_phone_code(
        self, services: NamedDependency[Services], data: JSONBody[PhoneCodeCreate]
    ) -> PhoneCodeOut:
        """Sandbox: a phone code.

        Sandbox only: a one-time phone code for a phone number, as WeChat's getPhoneNumber would."""
        code = await service.issue_phone_code(
            phone=data.phone, country_code=data.country_code, app_id=data.appid or services.settings.wechat_app_id
        )
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
        """Sandbox: a payment code.

        Sandbox only: a payment code in a shopper's wallet, with the scenario the payment will play out."""
        code = await service.issue_payment_code(openid=openid, scenario=data.scenario)
        return PaymentCodeOut(auth_code=code, expires_in_seconds=service.PAYMENT_CODE_TTL_SECONDS)


class SandboxPaymentController(Controller):
    """The shopper's side of wx.requestPayment, and WeChat Pay's notification that follows it."""

    path = "/api/v1/sandbox/payments"
    tags = ["Sandbox"]

    @post("/{out_trade_no:str}/confirm", operation_id="ConfirmSandboxPayment", status_code=200)
    async def confirm(
        self,
        services: NamedDependency[Services],
        out_trade_no: Annotated[str, PathParameter(pattern=r"^[0-9A-Za-z_*-]{6,32}$")],
        data: JSONBody[PaymentConfirm | None] = None,
    ) -> PaymentConfirmOut:
        """Sandbox: pay an order.

        Pay the order as its shopper, then post the signed, encrypted notification to the notify URL."""
        trade = await service.pay_prepay(out_trade_no)
        if trade is None:
            if await service.find_trade(out_trade_no) is None:
                raise TradeNotFound(out_trade_no=out_trade_no)
            raise TradeNotPayable(out_trade_no=out_trade_no)
        status = None
        if data is None or data.deliver_notification:
            provider = services.payment_provider
            payload = transaction_payload(trade, mchid=provider.mchid, appid=provider.appid)
            status = await services.sandbox_notifier.deliver(
                "TRANSACTION.SUCCESS", "transaction", json.dumps(payload, ensure_ascii=False).encode()
            )
        return PaymentConfirmOut(
            out_trade_no=out_trade_no,
            transaction_id=trade["transaction_id"],
            trade_state="SUCCESS",
            notify_status=status,
        )
