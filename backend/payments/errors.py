"""What the notify endpoint answers when a notification cannot be taken: WeChat Pay retries any 4xx."""

from backend.core.errors import DomainError


class NotificationRejected(DomainError):
    code = "payments.verification_failed"
    status_code = 401
    default_message = "The notification did not verify (signature, key serial, timestamp or encryption)."


class UnknownTrade(DomainError):
    code = "payments.unknown_trade"
    status_code = 404
    default_message = "No order or refund of ours has that number."


class MerchantMismatch(DomainError):
    code = "payments.merchant_mismatch"
    status_code = 400
    default_message = "The notification names another merchant or app; nothing was changed."


class AmountMismatch(DomainError):
    code = "payments.amount_mismatch"
    status_code = 400
    default_message = "The notified amount differs from the order's; nothing was changed."
