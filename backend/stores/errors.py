from backend.core.errors import DomainError, RateLimited


class StoreCodeTaken(DomainError):
    code = "stores.code_taken"
    status_code = 409
    default_message = "Another store already has that code."


class DeliveryNeedsLocation(DomainError):
    code = "stores.delivery_needs_location"
    status_code = 422
    default_message = "A store that delivers needs its latitude and longitude: the radius is measured from there."


class UsernameTaken(DomainError):
    code = "staff.username_taken"
    status_code = 409
    default_message = "Another staff account already has that username."


class UnknownStores(DomainError):
    code = "staff.unknown_store"
    status_code = 422
    default_message = "Some of the stores do not exist."


class StoresRequired(DomainError):
    code = "staff.stores_required"
    status_code = 422
    default_message = "Cashiers and store managers must act for at least one store."


class InvalidCredentials(DomainError):
    code = "auth.invalid_credentials"
    status_code = 401
    default_message = "The username or password is wrong."


class TooManyLoginFailures(RateLimited):
    code = "auth.too_many_attempts"
    default_message = "Too many failed sign-ins; wait and try again."


class CannotChangeSelf(DomainError):
    code = "staff.cannot_change_self"
    status_code = 409
    default_message = "You cannot deactivate your own account or change your own role; ask another HQ admin."
