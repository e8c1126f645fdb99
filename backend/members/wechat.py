"""Turning a wx.login code into a WeChat identity: WeChat's code2session, or the sandbox."""

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from backend.members.errors import InvalidLoginCode, WeChatRateLimited, WeChatUnavailable
from backend.sandbox import service as sandbox

logger = logging.getLogger(__name__)

# code2session errcodes: 40029 invalid code, 40163 code already used, 40226 high-risk user blocked.
_REFUSED = {40029, 40163, 40226}
_RATE_LIMITED = {45011}


@dataclass(frozen=True, slots=True)
class WeChatSession:
    openid: str
    unionid: str | None


@runtime_checkable
class LoginCodeExchanger(Protocol):
    async def exchange(self, code: str) -> WeChatSession: ...


class WeChatCode2Session:
    """The real exchange. `session_key` stays here: nothing we return or store carries it."""

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, app_id: str, app_secret: str) -> None:
        self._http = http
        self._url = f"{base_url}/sns/jscode2session"
        self._app_id = app_id
        self._app_secret = app_secret

    async def exchange(self, code: str) -> WeChatSession:
        params = {"appid": self._app_id, "secret": self._app_secret, "js_code": code,
                  "grant_type": "authorization_code"}
        try:
            response = await self._http.get(self._url, params=params, timeout=5.0)
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            logger.warning("code2session failed", extra={"error": type(error).__name__})
            raise WeChatUnavailable() from None
        errcode = int(body.get("errcode") or 0)
        if errcode in _REFUSED:
            raise InvalidLoginCode(errcode=errcode)
        if errcode in _RATE_LIMITED:
            raise WeChatRateLimited()
        if errcode != 0 or not body.get("openid"):
            logger.warning("code2session refused", extra={"errcode": errcode})
            raise WeChatUnavailable(errcode=errcode)
        return WeChatSession(openid=str(body["openid"]), unionid=body.get("unionid") or None)


class SandboxCode2Session:
    async def exchange(self, code: str) -> WeChatSession:
        found = await sandbox.redeem_login_code(code)
        if found is None:
            raise InvalidLoginCode()
        return WeChatSession(openid=found[0], unionid=found[1])
