from backend.core.errors import DomainError


class TradeNotFound(DomainError):
    code = "sandbox.trade_not_found"
    status_code = 404
    default_message = "The sandbox has no mini-program order with that number."


class TradeNotPayable(DomainError):
    code = "sandbox.trade_not_payable"
    status_code = 409
    default_message = "That order is paid, closed or expired already; it cannot be paid now."
