"""The identifiers a till handles: the shopper's payment code, and our out_trade_no for each attempt."""

import re
import secrets
import string
from datetime import datetime
from enum import Enum

OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z]{16,32}$")
_BASE62 = string.digits + string.ascii_letters


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


def new_out_trade_no(now: datetime) -> str:
    """28 characters of [0-9A-Za-z]: the UTC second, for people reading statements, and 14 random base-62
    characters (83 bits), so that every attempt gets a number nobody has used or can guess."""
    second = _SECOND % (now.year, now.month, now.day, now.hour, now.minute, now.second)  # strftime, at a third
    return second + base62(secrets.randbelow(62**14), 14)


_SECOND = "%04d%02d%02d%02d%02d%02d"


_PAIRS = [a + b for a in _BASE62 for b in _BASE62]  # two digits at a time: half the divisions


def base62(number: int, width: int) -> str:
    """`number` in `width` base-62 digits, most significant first (0 <= number < 62**width)."""
    pairs, odd = divmod(width, 2)
    digits = []
    for _ in range(pairs):
        number, pair = divmod(number, 3844)
        digits.append(_PAIRS[pair])
    if odd:
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))
