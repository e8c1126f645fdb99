"""Argon2id password hashing, run off the event loop (each hash costs tens of milliseconds)."""

from functools import cache

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.settings import get_settings


@cache
def _hasher() -> PasswordHasher:
    """At the cost the settings say (ARGON2_TIME_COST, ARGON2_MEMORY_KIB: by default argon2-cffi's RFC 9106
    low-memory profile; the test suite lowers it), built at first use, once the settings are checked."""
    settings = get_settings()
    return PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)


@cache
def _decoy() -> str:
    """Verified when the username is unknown, so that a miss costs as long as a hit."""
    return _hasher().hash("not-a-password-anyone-has")


def hash_password_sync(password: str) -> str:
    return _hasher().hash(password)


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher().hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(password_hash or _decoy(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await anyio.to_thread.run_sync(_verify, password_hash, password)
