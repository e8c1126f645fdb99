"""Poster templates: declarative JSON files under assets/posters, so a designer adds one without Python.

A template names its size, a background (a colour, a vertical gradient, or an image beside the file) and
layers drawn in order:

- `rect`: `box`, `color`, `radius`
- `text`: `text` with `{placeholders}`, `box`, `size`, `color`, `maxLines` (wrapped, the last line ending
  in "…" when the text is longer), `align` (`left` | `center` | `right`), `lineHeight`, `strike`
- `nickname`: a text layer showing the sharer's nickname
- `avatar`: the sharer's avatar, round, in `box`
- `image`: `source` (`product`) fitted to `box`, `radius`
- `qr`: the share link's QR code in `box` (whole pixels per module), `caption`, `captionSize`, `color`

Boxes are `[x, y, width, height]` in pixels.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from backend.settings import PROJECT_ROOT

TEMPLATE_DIR = PROJECT_ROOT / "assets" / "posters"
LAYER_TYPES = {"rect", "text", "nickname", "avatar", "image", "qr"}
POSTER_SIZE = (750, 1334)


class TemplateError(ValueError):
    """A template file a renderer cannot draw; names the file and the problem."""


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    kind: str  # "referral" | "group": which share target it is drawn for
    size: tuple[int, int]
    background: dict[str, Any]
    layers: tuple[dict[str, Any], ...]
    digest: str  # of the file: any edit changes every poster drawn from it
    directory: Path


def _box(value: Any, where: str) -> None:
    if not (isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) and v >= 0 for v in value)):
        raise TemplateError(f"{where}: box must be [x, y, width, height] in whole pixels")


def parse(path: Path) -> Template:
    raw = path.read_bytes()
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as error:
        raise TemplateError(f"{path.name}: not JSON ({error})") from None
    for key in ("name", "version", "kind", "size", "layers"):
        if key not in spec:
            raise TemplateError(f"{path.name}: missing {key!r}")
    if spec["kind"] not in ("referral", "group"):
        raise TemplateError(f"{path.name}: kind must be referral or group")
    if tuple(spec["size"]) != POSTER_SIZE:
        raise TemplateError(f"{path.name}: posters are {POSTER_SIZE[0]}x{POSTER_SIZE[1]}")
    qr_layers = 0
    for index, layer in enumerate(spec["layers"]):
        where = f"{path.name} layer {index}"
        if layer.get("type") not in LAYER_TYPES:
            raise TemplateError(f"{where}: type must be one of {sorted(LAYER_TYPES)}")
        _box(layer.get("box"), where)
        if layer["type"] in ("text", "nickname") and not isinstance(layer.get("size"), int):
            raise TemplateError(f"{where}: a text layer needs a whole-pixel size")
        if layer["type"] == "text" and not isinstance(layer.get("text"), str):
            raise TemplateError(f"{where}: a text layer needs its text")
        qr_layers += layer["type"] == "qr"
    if qr_layers != 1:
        raise TemplateError(f"{path.name}: a poster has exactly one QR layer")
    background = spec.get("background", {"color": "#FFFFFF"})
    image = background.get("image")
    if image is not None and not (path.parent / image).resolve().is_relative_to(path.parent.resolve()):
        raise TemplateError(f"{path.name}: the background image must sit beside the template")
    return Template(
        name=spec["name"],
        version=int(spec["version"]),
        kind=spec["kind"],
        size=POSTER_SIZE,
        background=background,
        layers=tuple(spec["layers"]),
        digest=hashlib.sha256(raw).hexdigest()[:16],
        directory=path.parent,
    )


@lru_cache(maxsize=4)
def load_templates(directory: Path = TEMPLATE_DIR) -> dict[str, Template]:
    templates = {}
    for path in sorted(directory.glob("*.json")):
        template = parse(path)
        if template.name != path.stem:
            raise TemplateError(f"{path.name}: its name must be {path.stem!r}")
        templates[template.name] = template
    return templates


def template_names() -> set[str]:
    return {name for name, template in load_templates().items() if template.kind == "referral"}
