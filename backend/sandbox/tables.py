from piccolo.columns import Timestamptz, Varchar
from piccolo.table import Table


class SandboxLoginCode(Table, tablename="sandbox_login_code"):
    """A one-time wx.login code the sandbox handed out, as WeChat's code2session would honour it."""

    code = Varchar(length=64, unique=True)
    openid = Varchar(length=64)
    unionid = Varchar(length=64, null=True, default=None)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class SandboxPhoneCode(Table, tablename="sandbox_phone_code"):
    """A one-time getPhoneNumber code, as WeChat's phone-number API would honour it."""

    code = Varchar(length=64, unique=True)
    country_code = Varchar(length=4)
    phone = Varchar(length=20)
    app_id = Varchar(length=64)  # the watermark WeChat puts on the answer
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
