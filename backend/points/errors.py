from backend.core.errors import DomainError


class InsufficientPoints(DomainError):
    code = "points.insufficient"
    status_code = 409
    default_message = "The member does not have that many points."


class IdempotencyConflict(DomainError):
    code = "points.idempotency_conflict"
    status_code = 409
    default_message = "That idempotency key was used for a different request."


class ZeroAdjustment(DomainError):
    code = "points.zero_adjustment"
    status_code = 422
    default_message = "An adjustment must move at least one point."
