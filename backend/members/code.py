"""The dynamic member code: 18 digits a barcode scanner reads, new every 30 seconds.

    89 | member number (10 digits) | time code (6 digits)

The prefix 89 never starts a payment code (WeChat's 10-15, Alipay's 25-30). The
member number is the member id under a keyed permutation, so codes never show
ids. The time code is an RFC 6238-style truncated HMAC-SHA256 of the member's
secret (derived from the server's secret) and the 30-second step.
"""

import hashlib
import hmac
import struct

PREFIX = "89"
STEP_SECONDS = 30
NUMBER_SPACE = 10**10
CODE_LENGTH = 18
_HALF_BITS = 17  # a Feistel network over 2**34 >= 10**10 numbers, cycle-walked into range
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUNDS = 4


def _round(key: bytes, index: int, half: int) -> int:
    digest = hmac.new(key, struct.pack(">BI", index, half), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") & _HALF_MASK


def _feistel(key: bytes, value: int, *, decrypt: bool) -> int:
    left, right = value >> _HALF_BITS, value & _HALF_MASK
    rounds = range(_ROUNDS - 1, -1, -1) if decrypt else range(_ROUNDS)
    for index in rounds:
        if decrypt:
            left, right = right ^ _round(key, index, left), left
        else:
            left, right = right, left ^ _round(key, index, right)
    return (left << _HALF_BITS) | right


def _permute(key: bytes, value: int, *, decrypt: bool = False) -> int:
    value = _feistel(key, value, decrypt=decrypt)
    while value >= NUMBER_SPACE:  # cycle-walk: a bijection of [0, 10**10) onto itself
        value = _feistel(key, value, decrypt=decrypt)
    return value


class MemberCodes:
    def __init__(self, secret_key: str) -> None:
        root = secret_key.encode()
        self._number_key = hmac.new(root, b"member-code:number", hashlib.sha256).digest()
        self._code_key = hmac.new(root, b"member-code:secret", hashlib.sha256).digest()

    def _member_secret(self, member_id: int) -> bytes:
        return hmac.new(self._code_key, str(member_id).encode(), hashlib.sha256).digest()

    def _time_code(self, member_id: int, step: int) -> str:
        digest = hmac.new(self._member_secret(member_id), struct.pack(">Q", step), hashlib.sha256).digest()
        offset = digest[-1] & 0x0F
        value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
        return f"{value % 1_000_000:06d}"

    def code_for(self, member_id: int, *, now: float) -> tuple[str, int]:
        """The member's code at `now` (a Unix time) and the seconds it has left."""
        if not 0 < member_id < NUMBER_SPACE:
            raise ValueError("member ids fit in ten digits")
        step = int(now) // STEP_SECONDS
        number = _permute(self._number_key, member_id)
        return f"{PREFIX}{number:010d}{self._time_code(member_id, step)}", STEP_SECONDS - int(now) % STEP_SECONDS

    def member_of(self, code: str) -> int | None:
        """The member a well-formed code names (whether or not its time code is right)."""
        if len(code) != CODE_LENGTH or not code.isdigit() or not code.startswith(PREFIX):
            return None
        member_id = _permute(self._number_key, int(code[2:12]), decrypt=True)
        return member_id or None

    def matching_step(self, code: str, member_id: int, *, now: float, steps: int = 2) -> int | None:
        """The time step (the current one, or one of the `steps - 1` before it) whose code this is, or None."""
        current = int(now) // STEP_SECONDS
        for step in range(current, current - steps, -1):
            if hmac.compare_digest(code[12:], self._time_code(member_id, step)):
                return step
        return None
