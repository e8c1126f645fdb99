import asyncio
import logging
import time

from litestar import Controller, Request, post
from litestar.di import NamedDependency

from backend.core import openapi
from backend.payments import service
from backend.payments.errors import NotificationNotRecorded, NotificationRejected, UnknownTrade
from backend.payments.provider import TransactionNotice
from backend.payments.wechatpay_protocol import VerificationFailed
from backend.services import Services

logger = logging.getLogger(__name__)


class WeChatPayNotifyController(Controller):
    path = "/api/v1/payments/wechat/notify"
    tags = ["Provider callbacks"]

    @post(operation_id="WeChatPayNotify", status_code=204, responses=openapi.errors(400, 401, 404, 503))
    async def notify(self, services: NamedDependency[Services], request: Request) -> None:
        """WeChat Pay notification.

        Verified over the raw body, then decrypted, then checked against our trade; 204 for a replay too.

        WeChat Pay waits 5 s for the answer, then counts the delivery failed: one not recorded within
        NOTIFY_BUDGET_SECONDS (the database busy or locked) is rolled back and answered 503, and sent again.
        """
        body = await request.body()
        try:
            notice = services.payment_provider.parse_notification(request.headers, body, now=int(time.time()))
        except VerificationFailed as error:
            logger.warning(
                "notification rejected",
                extra={
                    "reason": error.reason,
                    "serial": request.headers.get("wechatpay-serial", ""),
                    "client": request.client.host if request.client else "",
                },
            )
            raise NotificationRejected(details={"reason": error.reason}) from None
        number = notice.out_trade_no if isinstance(notice, TransactionNotice) else notice.out_refund_no
        try:
            async with asyncio.timeout(services.settings.notify_budget_seconds):
                accepted = await service.accept_notice(
                    notice, provider=services.payment_provider, policy=services.payment_policy
                )
        except TimeoutError:  # what it had begun was rolled back; recording it again later is a replay at worst
            logger.warning("notification not recorded in time", extra={"number": number})
            raise NotificationNotRecorded(details={"number": number}) from None
        if not accepted:
            logger.error("notification for an unknown trade", extra={"number": number})
            raise UnknownTrade(details={"number": number})
