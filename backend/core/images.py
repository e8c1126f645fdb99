"""Images people upload (an avatar, a product photo): judged before decoding, decoded once, re-encoded by us.

The upload itself is never kept or served: what is kept is our own encoding of its pixels, named by the
digest of those bytes, so that a name never changes meaning and may be cached for good.
"""

import hashlib
import io
import warnings

from litestar import Request
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.core.errors import DomainError

MAX_PIXELS = 25_000_000  # 5000 x 5000: a photo from any phone; larger is refused before decoding
FORMATS = ("JPEG", "PNG", "WEBP")
UPLOAD_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


class NotAnImage(DomainError):
    code = "posters.not_an_image"  # first published with avatars; the same answer for every upload since
    status_code = 415
    default_message = "Upload a JPEG, PNG or WebP image."


class ImageTooLarge(DomainError):
    code = "posters.image_too_large"
    status_code = 413
    default_message = "The image is too large."


def decode_upload(data: bytes, *, max_bytes: int) -> Image.Image:
    """The upload's pixels, upright, in RGB; or an error, decided from its size and header before decoding."""
    if len(data) > max_bytes:
        raise ImageTooLarge(f"At most {max_bytes:,} bytes.", details={"maxBytes": max_bytes})
    try:
        opened = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # Pillow's own guard, from the header, far past ours
        raise ImageTooLarge(f"At most {MAX_PIXELS:,} pixels.") from None
    except (UnidentifiedImageError, OSError):
        raise NotAnImage() from None
    with opened:
        if opened.format not in FORMATS:
            raise NotAnImage(details={"format": opened.format})
        width, height = opened.size
        if width * height > MAX_PIXELS:  # decided from the header, before a pixel is decoded
            raise ImageTooLarge(f"At most {MAX_PIXELS:,} pixels.", details={"width": width, "height": height})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened.load()
            return ImageOps.exif_transpose(opened).convert("RGB")
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageTooLarge() from None
        except (OSError, SyntaxError, ValueError):
            raise NotAnImage("The image is damaged.") from None


def jpeg(image: Image.Image, *, quality: int = 88) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


async def read_upload(request: Request) -> bytes:
    """The image as the request body, or as the `file` field of a multipart form (what wx.uploadFile sends)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        return await upload.read() if hasattr(upload, "read") else b""
    return await request.body()
