"""The shopper's payment code, as the till scans it."""

from enum import Enum


class PaymentCodeKind(str, Enum):
    wechat = "wechat"
    alipay = "alipay"


def classify_payment_code(code: str) -> PaymentCodeKind | None:
    """WeChat's payment codes are 18 digits starting 10-15; Alipay's 16-24 digits starting 25-30."""
    if not code.isdigit() or not code.isascii():
        return None
    prefix = int(code[:2]) if len(code) >= 2 else -1
    if len(code) == 18 and 10 <= prefix <= 15:
        return PaymentCodeKind.wechat
    if 16 <= len(code) <= 24 and 25 <= prefix <= 30:
        return PaymentCodeKind.alipay
    return None
