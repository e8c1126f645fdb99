from backend.core.errors import DomainError


class ProviderUnsupported(DomainError):
    code = "cashier.provider_unsupported"
    status_code = 422
    default_message = "That is an Alipay payment code; this till takes WeChat Pay only for now."


class InvalidPaymentCode(DomainError):
    code = "cashier.invalid_payment_code"
    status_code = 422
    default_message = "That is not a payment code; ask the shopper to show it again."


class AmountOutOfRange(DomainError):
    code = "cashier.amount_out_of_range"
    status_code = 422
    default_message = "The amount is above what one checkout may take."


class PointsNeedMember(DomainError):
    code = "cashier.points_need_member"
    status_code = 422
    default_message = "Points can be redeemed only when the member code was scanned."


class PointsNotExact(DomainError):
    code = "cashier.points_not_exact"
    status_code = 422
    default_message = "Those points do not convert to whole fen, or would cover the whole amount."


class IdempotencyConflict(DomainError):
    code = "cashier.idempotency_conflict"
    status_code = 409
    default_message = "That idempotency key was used for a different checkout."


class OrderNotFound(DomainError):
    code = "cashier.order_not_found"
    status_code = 404
    default_message = "No such order."


class OrderNotCancellable(DomainError):
    code = "cashier.order_not_cancellable"
    status_code = 409
    default_message = "Only an order whose payment is still under way can be cancelled."


class StoreNotFound(DomainError):
    code = "cashier.store_not_found"
    status_code = 404
    default_message = "No such store, or it does not take payments."


class PayerUnknown(DomainError):
    code = "cashier.payer_unknown"
    status_code = 409
    default_message = "This member has not signed in through the mini-program, so WeChat Pay cannot charge them."


class PaymentNotStarted(DomainError):
    code = "cashier.payment_not_started"
    status_code = 502
    default_message = "WeChat Pay did not take the order; nothing was charged, try again."


class OrderNotRefundable(DomainError):
    code = "cashier.order_not_refundable"
    status_code = 409
    default_message = "Only a paid order can be refunded."


class RefundExceedsPaid(DomainError):
    code = "cashier.refund_exceeds_paid"
    status_code = 422
    default_message = "The refunds would add up to more than the shopper paid."


class RefundRejected(DomainError):
    code = "cashier.refund_rejected"
    status_code = 502
    default_message = "WeChat Pay refused the refund; nothing was refunded."


class ProviderUnreachable(DomainError):
    code = "cashier.provider_unreachable"
    status_code = 503
    default_message = "WeChat Pay did not answer in time; nothing was changed, try again."
