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


class IdempotencyConflict(DomainError):
    code = "cashier.idempotency_conflict"
    status_code = 409
    default_message = "That idempotency key was used for a different checkout."


class OrderNotFound(DomainError):
    code = "cashier.order_not_found"
    status_code = 404
    default_message = "No such order."


class StoreNotFound(DomainError):
    code = "cashier.store_not_found"
    status_code = 404
    default_message = "No such store, or it does not take payments."
