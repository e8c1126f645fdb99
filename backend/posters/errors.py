from backend.core.errors import DomainError, RateLimited


class NotAnImage(DomainError):
    code = "posters.not_an_image"
    status_code = 415
    default_message = "Upload a JPEG, PNG or WebP image."


class ImageTooLarge(DomainError):
    code = "posters.image_too_large"
    status_code = 413
    default_message = "The image is too large."


class AvatarNotFound(DomainError):
    code = "posters.avatar_not_found"
    status_code = 404
    default_message = "No such avatar."


class PosterLimited(RateLimited):
    code = "posters.rate_limited"
    default_message = "Too many posters at once; try again in a minute."
