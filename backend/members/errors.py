from backend.core.errors import DomainError, RateLimited


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


class MemberCodeNotRecognised(DomainError):
    code = "members.code_not_recognised"
    status_code = 404
    default_message = "That member code is not valid now; ask the shopper to refresh it."


class MemberCodeUsed(DomainError):
    code = "members.code_used"
    status_code = 409
    default_message = "That member code was already scanned; ask the shopper to refresh it."


class TooManyLookups(RateLimited):
    code = "members.too_many_lookups"
    default_message = "Too many unrecognised member codes from this till; wait and try again."


class MemberNotFound(DomainError):
    code = "members.not_found"
    status_code = 404
    default_message = "No such member."


class MergeIntoSelf(DomainError):
    code = "members.merge_self"
    status_code = 422
    default_message = "A member cannot be merged into itself."


class AlreadyMerged(DomainError):
    code = "members.already_merged"
    status_code = 409
    default_message = "That member was already merged into another member."


class InvalidPhoneCode(DomainError):
    code = "members.invalid_phone_code"
    status_code = 422
    default_message = "The phone code is invalid, expired or already used; ask for the phone number again."


class PhoneWatermarkMismatch(DomainError):
    code = "members.phone_watermark_mismatch"
    status_code = 422
    default_message = "That phone number was issued to another mini-program."


class AvatarNotOurs(DomainError):
    code = "members.avatar_not_ours"
    status_code = 422
    default_message = "avatarUrl must be an avatar uploaded to this server by this member (POST /api/v1/me/avatar)."


class PayerUnknown(DomainError):
    code = "cashier.payer_unknown"  # the spelling the store-code payment has always answered with
    status_code = 409
    default_message = "This member has not signed in through the mini-program, so WeChat Pay cannot charge them."


class InvalidNickname(DomainError):
    code = "members.invalid_nickname"
    status_code = 422
    default_message = "A nickname is 1 to 20 printable characters."
