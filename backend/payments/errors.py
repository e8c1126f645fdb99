"""Payments' errors: notifications that cannot be taken (WeChat Pay retries any 4xx), and money that cannot move."""

from backend.core.errors import DomainError


class NotificationRejected(DomainError):
    code = "payments.verification_failed"
    status_code = 401
    default_message = "The notification did not verify (signature, key serial, timestamp or encryption)."


class NotificationNotRecorded(DomainError):
    code = "payments.busy"
    status_code = 503
    default_message = "The notification could not be recorded in time; WeChat Pay sends it again."


class RefundNotFound(DomainError):
    code = "payments.refund_not_found"
    status_code = 404
    default_message = "No such refund of that order."


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


# Taking and giving back money for an order of any channel. The codes the till has always answered with
# keep their `cashier.` spelling: they are part of the contract its clients were written against.


class PaymentNotStarted(DomainError):
    code = "cashier.payment_not_started"
    status_code = 502
    default_message = "WeChat Pay did not take the order; nothing was charged, try again."


class ProviderUnreachable(DomainError):
    code = "cashier.provider_unreachable"
    status_code = 503
    default_message = "WeChat Pay did not answer in time; nothing was changed, try again."


class NotCancellable(DomainError):
    code = "cashier.order_not_cancellable"
    status_code = 409
    default_message = "Only an order whose payment is still under way can be cancelled."


class AlreadyPaid(DomainError):
    code = "payments.already_paid"
    status_code = 409
    default_message = "The payer had already paid: the order stands."


class OrderNotRefundable(DomainError):
    code = "cashier.order_not_refundable"
    status_code = 409
    default_message = "Only a paid order can be refunded."


class RefundExceedsPaid(DomainError):
    code = "cashier.refund_exceeds_paid"
    status_code = 422
    default_message = "The refunds would add up to more than the shopper paid."


class TooManyRefunds(DomainError):
    code = "cashier.refund_limit"
    status_code = 409
    default_message = "WeChat Pay takes at most 50 refunds of one payment; refund the rest in one go."


class RefundRejected(DomainError):
    code = "cashier.refund_rejected"
    status_code = 502
    default_message = "WeChat Pay refused the refund; nothing was refunded."


class RefundConflict(DomainError):
    code = "cashier.idempotency_conflict"
    status_code = 409
    default_message = "That idempotency key was used for a different refund."
