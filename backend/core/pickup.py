"""Pickup codes: what a shopper shows at the till to collect an order (a group-buy seat, a mall order).

Single-use and store-scoped by whoever issues them; unguessable by their length.
"""

import secrets

PICKUP_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud and typed at a till
PICKUP_CODE_LENGTH = 12  # 31**12, about 59 bits: not guessable at any rate the API allows


def new_pickup_code() -> str:
    """One draw from the system's randomness, written in the alphabet's base (a choice per character reads the
    randomness twelve times)."""
    number, digits = secrets.randbelow(len(PICKUP_ALPHABET) ** PICKUP_CODE_LENGTH), []
    for _ in range(PICKUP_CODE_LENGTH):
        number, digit = divmod(number, len(PICKUP_ALPHABET))
        digits.append(PICKUP_ALPHABET[digit])
    return "".join(digits)


def normalise(code: str) -> str:
    """A code as typed at a till: spaces around it and lower case do not matter."""
    return code.strip().upper()
