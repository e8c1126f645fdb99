"""WeChat's side of the sandbox: the mini-program runtime's login codes."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from backend.core.clock import utcnow
from backend.core.db import insert_row, write_transaction
from backend.sandbox.tables import SandboxLoginCode, SandboxPhoneCode

LOGIN_CODE_TTL_SECONDS = 300  # WeChat's wx.login codes live five minutes


def new_openid() -> str:
    # Real openids are 28 characters starting with "o"; sandbox ones look the same.
    return "o" + secrets.token_urlsafe(20)[:27]


@dataclass(frozen=True, slots=True)
class LoginCode:
    code: str
    openid: str
    unionid: str | None


async def issue_login_code(*, openid: str | None, unionid: str | None) -> LoginCode:
    issued = LoginCode(code=secrets.token_urlsafe(24), openid=openid or new_openid(), unionid=unionid)
    async with write_transaction():
        await insert_row(SandboxLoginCode, code=issued.code, openid=issued.openid, unionid=issued.unionid,
                         expires_at=utcnow() + timedelta(seconds=LOGIN_CODE_TTL_SECONDS))
    return issued


async def redeem_login_code(code: str) -> tuple[str, str | None] | None:
    """Spend a login code once; answer (openid, unionid), or None for an unknown, used or expired code."""
    async with write_transaction():
        rows = await SandboxLoginCode.update({SandboxLoginCode.used_at: utcnow()}).where(
            (SandboxLoginCode.code == code)
            & SandboxLoginCode.used_at.is_null()
            & (SandboxLoginCode.expires_at > utcnow())
        ).returning(SandboxLoginCode.openid, SandboxLoginCode.unionid)
    return (rows[0]["openid"], rows[0]["unionid"]) if rows else None


async def issue_phone_code(*, phone: str, country_code: str, app_id: str) -> str:
    code = secrets.token_urlsafe(24)
    async with write_transaction():
        await insert_row(SandboxPhoneCode, code=code, country_code=country_code, phone=phone, app_id=app_id,
                         expires_at=utcnow() + timedelta(seconds=LOGIN_CODE_TTL_SECONDS))
    return code


async def redeem_phone_code(code: str) -> dict[str, str] | None:
    """Spend a phone code once; answer the phone and the watermark app id, or None."""
    async with write_transaction():
        rows = await SandboxPhoneCode.update({SandboxPhoneCode.used_at: utcnow()}).where(
            (SandboxPhoneCode.code == code)
            & SandboxPhoneCode.used_at.is_null()
            & (SandboxPhoneCode.expires_at > utcnow())
        ).returning(SandboxPhoneCode.country_code, SandboxPhoneCode.phone, SandboxPhoneCode.app_id)
    return rows[0] if rows else None
