from enum import Enum

from piccolo.columns import BigInt, Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check
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


class SandboxScenario(str, Enum):
    success = "success"
    password_then_success = "password_then_success"
    password_timeout = "password_timeout"
    insufficient_funds = "insufficient_funds"
    system_error_then_success = "system_error_then_success"


class SandboxPaymentCode(Table, tablename="sandbox_payment_code"):
    """A payment code a sandbox wallet shows at the till: pays once, as its owner, the way its scenario says."""

    auth_code = Varchar(length=24, unique=True)
    openid = Varchar(length=64)
    scenario = Varchar(length=32, choices=SandboxScenario)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class SandboxTradeType(str, Enum):
    micropay = "MICROPAY"  # the till scanned a payment code
    jsapi = "JSAPI"  # the mini-program's wx.requestPayment


class SandboxTrade(Table, tablename="sandbox_trade"):
    """WeChat Pay's record of a trade, as the sandbox keeps it."""

    out_trade_no = Varchar(length=32, unique=True)
    transaction_id = Varchar(length=32, unique=True)
    trade_type = Varchar(length=16, choices=SandboxTradeType, default=SandboxTradeType.micropay)
    prepay_id = Varchar(length=64, default="")
    openid = Varchar(length=64)
    amount_fen = BigInt()
    refunded_fen = BigInt(default=0)
    scenario = Varchar(length=32, choices=SandboxScenario)
    state = Varchar(length=16)
    queries = Integer(default=0)
    reversals = Integer(default=0)
    expires_at = Timestamptz(null=True, default=None)  # JSAPI: time_expire, after which it cannot be paid
    created_at = Timestamptz(default=TimestamptzNow())

    amount_positive = Check(amount_fen > 0)
    refunds_within_amount = Check((refunded_fen >= 0) & (refunded_fen <= amount_fen))


class SandboxRefund(Table, tablename="sandbox_refund"):
    """WeChat Pay's record of a refund: one per out_refund_no, its money out of one trade."""

    out_refund_no = Varchar(length=64, unique=True)
    refund_id = Varchar(length=32, unique=True)
    out_trade_no = Varchar(length=32, index=True)
    amount_fen = BigInt()
    status = Varchar(length=16)
    created_at = Timestamptz(default=TimestamptzNow())

    sandbox_refund_amount_positive = Check(amount_fen > 0)
