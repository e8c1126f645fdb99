"""The numbers a payment goes by at the provider: `out_trade_no` for each attempt, `out_refund_no` for each refund."""

import hashlib
import re
import secrets
import string
from datetime import datetime

OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z]{16,32}$")
_BASE62 = string.digits + string.ascii_letters
_SECOND = "%04d%02d%02d%02d%02d%02d"
_PAIRS = [a + b for a in _BASE62 for b in _BASE62]  # two digits at a time: half the divisions


def new_out_trade_no(now: datetime) -> str:
    """28 characters of [0-9A-Za-z]: the UTC second, for people reading statements, and 14 random base-62
    characters (83 bits), so that every attempt gets a number nobody has used or can guess."""
    second = _SECOND % (now.year, now.month, now.day, now.hour, now.minute, now.second)  # strftime, at a third
    return second + base62(secrets.randbelow(62**14), 14)


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


def out_refund_no(out_trade_no: str, idempotency_key: str) -> str:
    """Derived from the trade and the refund's key, so a retried request asks the provider for the same refund."""
    return "R" + hashlib.sha256(f"{out_trade_no}\n{idempotency_key}".encode()).hexdigest()[:31]
