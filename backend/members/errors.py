from backend.core.errors import DomainError


class InvalidLoginCode(DomainError):
    code = "auth.invalid_code"
    status_code = 401
    default_message = "The login code is invalid, expired or already used; call wx.login again."


class WeChatRateLimited(DomainError):
    code = "auth.wechat_rate_limited"
    status_code = 429
    default_message = "WeChat is limiting sign-ins right now; retry shortly."


class WeChatUnavailable(DomainError):
    code = "auth.wechat_unavailable"
    status_code = 502
    default_message = "WeChat did not answer; retry shortly."
