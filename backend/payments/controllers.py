import logging
import time

from litestar import Controller, Request, post
from litestar.di import NamedDependency

from backend.payments import service
from backend.payments.errors import NotificationRejected, UnknownTrade
from backend.payments.provider import TransactionNotice
from backend.payments.wechatpay_protocol import VerificationFailed
from backend.services import Services

logger = logging.getLogger(__name__)


class WeChatPayNotifyController(Controller):
    path = "/api/v1/payments/wechat/notify"
    tags = ["Provider callbacks"]

    @post(operation_id="WeChatPayNotify", status_code=204)
    async def notify(self, services: NamedDependency[Services], request: Request) -> None:
        """Verified over the raw body, then decrypted, then checked against our trade; 204 for a replay too."""
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
        if not await service.accept_notice(notice, provider=services.payment_provider, policy=services.payment_policy):
            number = notice.out_trade_no if isinstance(notice, TransactionNotice) else notice.out_refund_no
            logger.error("notification for an unknown trade", extra={"number": number})
            raise UnknownTrade(details={"number": number})
