from piccolo.columns import Timestamptz, Varchar
from piccolo.table import Table


class SandboxLoginCode(Table, tablename="sandbox_login_code"):
    """A one-time wx.login code the sandbox handed out, as WeChat's code2session would honour it."""

    code = Varchar(length=64, unique=True)
    openid = Varchar(length=64)
    unionid = Varchar(length=64, null=True, default=None)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
