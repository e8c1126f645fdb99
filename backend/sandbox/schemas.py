from typing import Annotated

import msgspec

from backend.core.schema import Struct

WeChatId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{6,64}$")]


class LoginCodeCreate(Struct):
    openid: WeChatId | None = None
    unionid: WeChatId | None = None


class LoginCodeOut(Struct):
    code: str
    openid: str
    unionid: str | None
    expires_in_seconds: int
