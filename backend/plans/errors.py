from backend.core.errors import DomainError


class PlanCodeTaken(DomainError):
    code = "membership.plan_code_taken"
    status_code = 409
    default_message = "A plan with that code exists."


class PlanInvalid(DomainError):
    code = "membership.plan_invalid"
    status_code = 422
    default_message = "The plan does not hold together: see details."


class PlanNotFound(DomainError):
    code = "membership.plan_not_found"
    status_code = 404
    default_message = "No such plan on sale."


class StoreRequired(DomainError):
    code = "membership.store_required"
    status_code = 422
    default_message = "Say which store sells this membership (storeId): you were not enrolled at one."


class StoreNotFound(DomainError):
    code = "membership.store_not_found"
    status_code = 404
    default_message = "No such store."


class PurchaseNotFound(DomainError):
    code = "membership.purchase_not_found"
    status_code = 404
    default_message = "No such membership purchase of yours."


class IdempotencyConflict(DomainError):
    code = "membership.idempotency_conflict"
    status_code = 409
    default_message = "That idempotency key was used for a different purchase."


class NotRefundable(DomainError):
    code = "membership.not_refundable"
    status_code = 409
    default_message = "This membership can no longer be refunded: see details for why."
