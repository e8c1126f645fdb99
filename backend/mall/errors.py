from backend.core.errors import DomainError


class MallOrderNotFound(DomainError):
    code = "mall.order_not_found"
    status_code = 404
    default_message = "No such mall order."


class StoreNotFound(DomainError):
    code = "mall.store_not_found"
    status_code = 404
    default_message = "No such store, or it is not open."


class LinesInvalid(DomainError):
    code = "mall.lines_invalid"
    status_code = 422
    default_message = "Name each SKU once."


class SkusNotSold(DomainError):
    code = "mall.skus_not_sold"
    status_code = 422
    default_message = "The store does not sell some of those SKUs now (unknown, off sale, or not stocked there)."


class OutOfStock(DomainError):
    code = "mall.out_of_stock"
    status_code = 409
    default_message = "The store has not that many left."


class AddressRequired(DomainError):
    code = "mall.address_required"
    status_code = 422
    default_message = "A delivery needs an address."


class NoDelivery(DomainError):
    code = "mall.no_delivery"
    status_code = 422
    default_message = "This store does not deliver; choose pickup."


class OutsideDeliveryArea(DomainError):
    code = "mall.outside_delivery_area"
    status_code = 422
    default_message = "The address is farther from the store than it delivers."


class IdempotencyConflict(DomainError):
    code = "mall.idempotency_conflict"
    status_code = 409
    default_message = "That idempotency key was used for a different order."


class WrongStatus(DomainError):
    code = "mall.wrong_status"
    status_code = 409
    default_message = "The order is not in a state that allows that."


class RefundLinesInvalid(DomainError):
    code = "mall.refund_lines_invalid"
    status_code = 422
    default_message = "Name lines of this order, each once, with no more units than are left to refund."


class NothingToPay(DomainError):
    code = "mall.nothing_to_pay"
    status_code = 422
    default_message = "These lines cost nothing: an order is paid for at least 1 fen."


class NothingToRefund(DomainError):
    code = "mall.nothing_to_refund"
    status_code = 409
    default_message = "Nothing of this order is left to refund (or the units named paid nothing)."
