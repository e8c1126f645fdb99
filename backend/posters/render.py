"""Drawing a poster: a pure function of a template and its data, to PNG or JPEG bytes.

Text is drawn with the bundled CJK font; a character it lacks comes from the second font, and one neither
has is drawn as □, so no character ever silently disappears. The QR code has whole pixels per module.
"""

import io
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import qrcode
from fontTools.ttLib import TTFont
from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps
from qrcode.constants import ERROR_CORRECT_M

from backend.posters.templates import Template
from backend.settings import PROJECT_ROOT

FONT_DIR = PROJECT_ROOT / "assets" / "fonts"
FONTS = (FONT_DIR / "DroidSansFallbackFull.ttf", FONT_DIR / "DejaVuSans.ttf")  # first choice, then the second
MISSING = "□"
ELLIPSIS = "…"
QR_BORDER = 4  # modules of quiet zone, as the QR standard asks


@dataclass(frozen=True)
class PosterInput:
    """Everything that changes the pixels; its digest keys the cache."""

    template: Template
    fields: tuple[tuple[str, str], ...]  # placeholders, including "nickname"
    url: str  # what the QR code says
    avatar: bytes | None  # the member's re-encoded upload, or None for the drawn initial
    product: bytes | None  # the product image file's bytes, when the template shows one


@lru_cache(maxsize=4)
def _coverage(path: str) -> frozenset[int]:
    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


_thread = threading.local()


def _font(index: int, size: int) -> ImageFont.FreeTypeFont:
    """A loaded font, one per rendering thread: a FreeType face is not to be shared between threads."""
    fonts = getattr(_thread, "fonts", None)
    if fonts is None:
        fonts = _thread.fonts = {}
    font = fonts.get((index, size))
    if font is None:
        font = fonts[index, size] = ImageFont.truetype(str(FONTS[index]), size)
    return font


def font_for(char: str) -> int | None:
    """Which bundled font draws the character; None when neither has it."""
    for index, path in enumerate(FONTS):
        if ord(char) in _coverage(str(path)):
            return index
    return None


def drawable(text: str) -> str:
    """The text as it will be drawn: characters no font has become □."""
    return "".join(ch if ch in "\n\t " or font_for(ch) is not None else MISSING for ch in text)


def _runs(text: str) -> list[tuple[int, str]]:
    runs: list[tuple[int, str]] = []
    for ch in text:
        index = 0 if ch == " " else font_for(ch)
        assert index is not None, "drawable() first"
        if runs and runs[-1][0] == index:
            runs[-1] = (index, runs[-1][1] + ch)
        else:
            runs.append((index, ch))
    return runs


def _width(text: str, size: int) -> float:
    return sum(_font(index, size).getlength(run) for index, run in _runs(text))


def _tokens(text: str) -> list[str]:
    """Latin words stay whole; every CJK character is a place to break."""
    tokens: list[str] = []
    for ch in text:
        if tokens and ch.isascii() and ch.isalnum() and tokens[-1][-1:].isascii() and tokens[-1][-1:].isalnum():
            tokens[-1] += ch
        else:
            tokens.append(ch)
    return tokens


def wrap(text: str, size: int, width: int, max_lines: int) -> list[str]:
    lines, line = [], ""
    for token in _tokens(drawable(text)):
        if token == "\n":
            lines.append(line)
            line = ""
            continue
        if _width(line + token, size) <= width:
            line += token
            continue
        if line.strip():
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line = ""
            for ch in token:  # a word longer than the line breaks anywhere
                if _width(line + ch, size) > width and line:
                    lines.append(line)
                    line = ""
                line += ch
    lines.append(line)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and _width(last + ELLIPSIS, size) > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last.rstrip() + ELLIPSIS]
    return lines


def _draw_text(draw: ImageDraw.ImageDraw, layer: dict[str, Any], text: str) -> None:
    x, y, width, height = layer["box"]
    size, color = layer["size"], layer.get("color", "#000000")
    line_height = round(size * float(layer.get("lineHeight", 1.3)))
    max_lines = max(1, min(int(layer.get("maxLines", 1)), max(1, height // line_height) or 1))
    for number, line in enumerate(wrap(text, size, width, max_lines)):
        line_width = _width(line, size)
        left = x + {"center": (width - line_width) / 2, "right": width - line_width}.get(layer.get("align"), 0)
        top = y + number * line_height
        cursor = left
        for index, run in _runs(line):
            draw.text((cursor, top), run, font=_font(index, size), fill=color)
            cursor += _font(index, size).getlength(run)
        if layer.get("strike"):
            middle = top + size * 0.6
            draw.line([(left, middle), (cursor, middle)], fill=color, width=max(1, size // 14))


def qr_image(url: str, box: int, color: str = "#000000") -> Image.Image:
    """The QR code, its quiet zone included, at the largest whole number of pixels per module in `box`."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=QR_BORDER, box_size=1)
    code.add_data(url)
    code.make(fit=True)
    matrix = code.get_matrix()
    modules = len(matrix)
    scale = box // modules
    if scale < 2:
        raise ValueError(f"a {modules}-module QR code does not fit {box} px at 2 px per module")
    small = Image.new("L", (modules, modules), 255)
    small.putdata([0 if dark else 255 for row in matrix for dark in row])
    big = small.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)
    return ImageOps.colorize(big, black=color, white="#FFFFFF")


def _rounded(image: Image.Image, radius: int) -> Image.Image:
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, image.size[0] - 1, image.size[1] - 1], radius=radius, fill=255)
    image.putalpha(mask)
    return image


def _round_avatar(data: bytes | None, size: int, nickname: str) -> Image.Image:
    if data is not None:
        with Image.open(io.BytesIO(data)) as opened:
            face = ImageOps.fit(opened.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
    else:  # no upload: the nickname's first character on a disc
        face = Image.new("RGB", (size, size), "#FFB066")
        initial = drawable(nickname.strip()[:1] or "会")
        index = font_for(initial) or 0
        ImageDraw.Draw(face).text(
            (size / 2, size / 2), initial, font=_font(index, size // 2), fill="#FFFFFF", anchor="mm"
        )
    big = size * 4  # the circle's edge drawn large and scaled down: smooth
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).ellipse([0, 0, big - 1, big - 1], fill=255)
    face = face.convert("RGBA")
    face.putalpha(mask.resize((size, size), Image.Resampling.LANCZOS))
    return face


_backgrounds: dict[tuple[str, str], Image.Image] = {}


def _background(template: Template) -> Image.Image:
    """The background alone, drawn once per template file and copied for each poster."""
    key = (template.name, template.digest)
    if key not in _backgrounds:
        _backgrounds[key] = _draw_background(template)
    return _backgrounds[key]


def _draw_background(template: Template) -> Image.Image:
    width, height = template.size
    spec = template.background
    if "image" in spec:
        with Image.open(template.directory / spec["image"]) as opened:
            return ImageOps.fit(opened.convert("RGB"), (width, height))
    if "gradient" in spec:
        top, bottom = (ImageColor.getrgb(c)[:3] for c in spec["gradient"])
        column = Image.new("RGB", (1, height))
        column.putdata(
            [
                tuple(round(a + (b - a) * y / (height - 1)) for a, b in zip(top, bottom, strict=True))
                for y in range(height)
            ]
        )
        return column.resize((width, height))
    return Image.new("RGB", (width, height), spec.get("color", "#FFFFFF"))


def render(poster: PosterInput, image_format: str) -> bytes:
    """The poster's bytes; pure: the same input gives the same pixels."""
    fields = dict(poster.fields)
    canvas = _background(poster.template).copy()
    draw = ImageDraw.Draw(canvas)
    for layer in poster.template.layers:
        kind, (x, y, width, height) = layer["type"], layer["box"]
        if kind == "rect":
            draw.rounded_rectangle(
                [x, y, x + width - 1, y + height - 1], radius=layer.get("radius", 0), fill=layer.get("color", "#FFFFFF")
            )
        elif kind in ("text", "nickname"):
            text = fields.get("nickname", "") if kind == "nickname" else layer["text"].format_map(_Fields(fields))
            _draw_text(draw, layer, text)
        elif kind == "avatar":
            canvas.paste(
                avatar := _round_avatar(poster.avatar, min(width, height), fields.get("nickname", "")), (x, y), avatar
            )
        elif kind == "image":
            _draw_image(canvas, draw, layer, poster.product, fields)
        elif kind == "qr":
            code = qr_image(poster.url, min(width, height), layer.get("color", "#000000"))
            canvas.paste(code, (x + (width - code.width) // 2, y + (height - code.height) // 2))
            if layer.get("caption"):
                caption = {
                    "box": [x - 60, y + height + 16, width + 120, layer.get("captionSize", 24) * 2],
                    "size": layer.get("captionSize", 24),
                    "color": layer.get("captionColor", "#555555"),
                    "align": "center",
                }
                _draw_text(draw, caption, layer["caption"])
    out = io.BytesIO()
    if image_format == "jpeg":
        canvas.save(out, "JPEG", quality=90, subsampling=0)
    else:
        canvas.save(out, "PNG", compress_level=3)
    return out.getvalue()


def _draw_image(
    canvas: Image.Image, draw: ImageDraw.ImageDraw, layer: dict[str, Any], data: bytes | None, fields: dict[str, str]
) -> None:
    x, y, width, height = layer["box"]
    if data is None:  # no product image: a quiet panel with the product's name
        draw.rounded_rectangle([x, y, x + width - 1, y + height - 1], radius=layer.get("radius", 0), fill="#F1F3F5")
        _draw_text(
            draw,
            {"box": [x + 20, y + height // 2 - 20, width - 40, 48], "size": 32, "color": "#ADB5BD", "align": "center"},
            fields.get("productName", ""),
        )
        return
    with Image.open(io.BytesIO(data)) as opened:
        picture = ImageOps.fit(opened.convert("RGB"), (width, height), Image.Resampling.BILINEAR)
    picture = _rounded(picture.convert("RGBA"), layer.get("radius", 0))
    canvas.paste(picture, (x, y), picture)


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return ""
