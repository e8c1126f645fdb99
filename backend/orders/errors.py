from backend.core.errors import DomainError


class OrderNotFound(DomainError):
    code = "orders.not_found"
    status_code = 404
    default_message = "No such order."
