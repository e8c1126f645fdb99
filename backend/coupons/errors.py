from backend.core.errors import DomainError


class CouponNotUsable(DomainError):
    code = "coupons.not_usable"
    status_code = 422
    default_message = "That coupon cannot be used on this order."
