"""Turning a wx.login code into a WeChat identity, and a phone code into a phone number: WeChat's own APIs.

The sandbox answers the same two protocols (`backend.sandbox.wechat`)."""

import logging
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from backend.core.errors import KVUnavailable
from backend.core.kv import KV
from backend.members.errors import (
    InvalidLoginCode,
    InvalidPhoneCode,
    WeChatRateLimited,
    WeChatUnavailable,
)

logger = logging.getLogger(__name__)

# code2session errcodes: 40029 invalid code, 40163 code already used, 40226 high-risk user blocked.
_REFUSED = {40029, 40163, 40226}
_RATE_LIMITED = {45011}
_TOKEN_EXPIRED = {40001, 42001}  # the access token was revoked or ran out


@dataclass(frozen=True, slots=True)
class WeChatSession:
    app_id: str  # an openid means something only within its mini-program
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
        params = {
            "appid": self._app_id,
            "secret": self._app_secret,
            "js_code": code,
            "grant_type": "authorization_code",
        }
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
        return WeChatSession(app_id=self._app_id, openid=str(body["openid"]), unionid=body.get("unionid") or None)


@dataclass(frozen=True, slots=True)
class WeChatPhone:
    phone: str  # +<country code><number>
    watermark_app_id: str


@runtime_checkable
class PhoneNumberExchanger(Protocol):
    async def phone_number(self, code: str) -> WeChatPhone: ...


class WeChatPhoneNumbers:
    """getuserphonenumber, with the mini-program's access token kept in the KV until shortly before it expires."""

    def __init__(self, http: httpx.AsyncClient, kv: KV, *, base_url: str, app_id: str, app_secret: str) -> None:
        self._http, self._kv, self._base = http, kv, base_url
        self._app_id, self._app_secret = app_id, app_secret
        self._token_key = f"mall:members:wechat_access_token:{app_id}"

    async def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = await self._http.request(method, f"{self._base}{path}", timeout=5.0, **kwargs)
            return response.json()
        except (httpx.HTTPError, ValueError) as error:
            logger.warning("WeChat call failed", extra={"path": path, "error": type(error).__name__})
            raise WeChatUnavailable() from None

    async def _access_token(self, *, fresh: bool = False) -> str:
        if not fresh:
            with suppress(KVUnavailable):  # fails open: a token asked of WeChat anew serves as well
                if cached := await self._kv.get(self._token_key):
                    return cached.decode()
        body = await self._call(
            "GET",
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self._app_id, "secret": self._app_secret},
        )
        if not body.get("access_token"):
            logger.warning("access token refused", extra={"errcode": body.get("errcode")})
            raise WeChatUnavailable()
        lifetime = max(60, int(body.get("expires_in", 7200)) - 300)
        with suppress(KVUnavailable):
            await self._kv.set(self._token_key, body["access_token"].encode(), expires_in=lifetime)
        return body["access_token"]

    async def phone_number(self, code: str) -> WeChatPhone:
        for fresh in (False, True):
            token = await self._access_token(fresh=fresh)
            body = await self._call(
                "POST", "/wxa/business/getuserphonenumber", params={"access_token": token}, json={"code": code}
            )
            errcode = int(body.get("errcode") or 0)
            if errcode in _TOKEN_EXPIRED and not fresh:
                continue
            if errcode in _REFUSED:
                raise InvalidPhoneCode(errcode=errcode)
            if errcode in _RATE_LIMITED:
                raise WeChatRateLimited()
            info = body.get("phone_info") or {}
            if errcode != 0 or not info.get("purePhoneNumber"):
                raise WeChatUnavailable(errcode=errcode)
            return WeChatPhone(
                phone=f"+{info.get('countryCode', '86')}{info['purePhoneNumber']}",
                watermark_app_id=str((info.get("watermark") or {}).get("appid", "")),
            )
        raise WeChatUnavailable()
