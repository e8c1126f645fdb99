"""The sandbox's answers to the two WeChat protocols members sign in with: login codes and phone codes."""

from backend.members.errors import InvalidLoginCode, InvalidPhoneCode
from backend.members.wechat import WeChatPhone, WeChatSession
from backend.sandbox import service as sandbox


class SandboxCode2Session:
    def __init__(self, *, app_id: str) -> None:
        self._app_id = app_id

    async def exchange(self, code: str) -> WeChatSession:
        found = await sandbox.redeem_login_code(code)
        if found is None:
            raise InvalidLoginCode()
        return WeChatSession(app_id=self._app_id, openid=found[0], unionid=found[1])


class SandboxPhoneNumbers:
    async def phone_number(self, code: str) -> WeChatPhone:
        found = await sandbox.redeem_phone_code(code)
        if found is None:
            raise InvalidPhoneCode()
        return WeChatPhone(phone=f"+{found['country_code']}{found['phone']}", watermark_app_id=found["app_id"])
