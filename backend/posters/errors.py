from backend.core.errors import DomainError, RateLimited


class AvatarNotFound(DomainError):
    code = "posters.avatar_not_found"
    status_code = 404
    default_message = "No such avatar."


class PosterLimited(RateLimited):
    code = "posters.rate_limited"
    default_message = "Too many posters at once; try again in a minute."
