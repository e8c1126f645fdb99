from backend.core.errors import DomainError


class CouponNotUsable(DomainError):
    code = "coupons.not_usable"
    status_code = 422
    default_message = "That coupon cannot be used on this order."


class TemplateNotFound(DomainError):
    code = "coupons.template_not_found"
    status_code = 404
    default_message = "No such coupon template."


class CampaignNotFound(DomainError):
    code = "coupons.campaign_not_found"
    status_code = 404
    default_message = "No such coupon campaign."


class TemplateInvalid(DomainError):
    code = "coupons.template_invalid"
    status_code = 422
    default_message = "The coupon template does not hold together."


class CampaignInvalid(DomainError):
    code = "coupons.campaign_invalid"
    status_code = 422
    default_message = "The coupon campaign does not hold together."


class CampaignNotOpen(DomainError):
    code = "coupons.campaign_not_open"
    status_code = 409
    default_message = "The campaign is not running now."


class WrongTrigger(DomainError):
    code = "coupons.wrong_trigger"
    status_code = 409
    default_message = "The campaign's coupons are not given this way."


class ClaimLimitReached(DomainError):
    code = "coupons.limit_reached"
    status_code = 409
    default_message = "You already hold as many of these coupons as one member may."


class SoldOut(DomainError):
    code = "coupons.sold_out"
    status_code = 409
    default_message = "Every coupon of this campaign is given out."
