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


# Redeeming points on an order (first published with the till: the codes say so).
class PointsNeedMember(DomainError):
    code = "cashier.points_need_member"
    status_code = 422
    default_message = "Points can be redeemed only when the member code was scanned."


class PointsNotExact(DomainError):
    code = "cashier.points_not_exact"
    status_code = 422
    default_message = "Those points do not convert to whole fen, or would cover the whole amount."
