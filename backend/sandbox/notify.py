"""The sandbox's WeChat Pay notifications: built, encrypted and signed as WeChat Pay does, and posted over HTTP."""

import logging
import secrets
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from backend.payments.wechatpay_protocol import seal_notification
from backend.sandbox.keys import SandboxKeys

logger = logging.getLogger(__name__)

WECHATPAY_TIME = ZoneInfo("Asia/Shanghai")  # WeChat Pay writes its times in Beijing time: 2026-12-01T15:04:05+08:00


def wechatpay_now() -> str:
    return datetime.now(WECHATPAY_TIME).isoformat(timespec="seconds")


def transaction_payload(trade: dict, *, mchid: str, appid: str) -> dict:
    """The decrypted resource of a TRANSACTION.SUCCESS notification, in WeChat Pay's field names."""
    return {
        "mchid": mchid,
        "appid": appid,
        "out_trade_no": trade["out_trade_no"],
        "transaction_id": trade["transaction_id"],
        "trade_type": trade["trade_type"],
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": wechatpay_now(),
        "payer": {"openid": trade["openid"]},
        "amount": {
            "total": trade["amount_fen"],
            "payer_total": trade["amount_fen"],
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }


class SandboxNotifier:
    def __init__(self, keys: SandboxKeys, *, url: str, client: httpx.AsyncClient | None = None) -> None:
        self.keys, self.url = keys, url
        self.client = client

    def seal(
        self, event_type: str, original_type: str, payload: bytes, *, timestamp: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        return seal_notification(
            private_key=self.keys.platform_key,
            serial=self.keys.platform_serial,
            api_v3_key=self.keys.api_v3_key,
            event_id=secrets.token_hex(16),
            event_type=event_type,
            original_type=original_type,
            payload=payload,
            create_time=wechatpay_now(),
            timestamp=int(time.time()) if timestamp is None else timestamp,
            nonce=secrets.token_hex(16),
            resource_nonce=secrets.token_hex(6),
        )

    async def deliver(self, event_type: str, original_type: str, payload: bytes) -> int | None:
        """Post one notification; answers the HTTP status, or None when it could not be delivered."""
        headers, body = self.seal(event_type, original_type, payload)
        if self.client is None:
            return None
        try:
            response = await self.client.post(self.url, content=body, headers=headers, timeout=10.0)
        except httpx.HTTPError as error:
            logger.warning("sandbox notification not delivered", extra={"error": type(error).__name__})
            return None
        return response.status_code
