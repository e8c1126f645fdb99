"""Request bodies decoded strictly, straight into the type their handler takes.

Litestar decodes a JSON body into plain values and then converts them into the handler's type in lax
mode (the mode a query string needs), so `"amountFen": "1000"` and `"amountFen": 1e3` became 1000. A
body is JSON, whose numbers are numbers: here it is decoded in one pass into the handler's `data` type,
strictly, so that anything else is 422 `request.invalid` naming the field. A typed decode also stops at
the first value of the wrong shape, so a body nested 100,000 deep is refused at its first level; list
lengths are bounded by the schemas' own `max_length`. Text with a NUL character (`\\u0000`) is refused too:
PostgreSQL cannot store it, and no field of ours means it.
"""

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.serialization import decode_json
from litestar.types import Empty

_decoders: dict[Any, msgspec.json.Decoder | None] = {}


def _decoder(route_handler: Any) -> msgspec.json.Decoder | None:
    """The strict decoder of the handler's `data` type, or None when it takes no typed body; one per handler
    function (which every app built in the process shares: a controller's handler is keyed by its function,
    not by the method bound to one app's controller, which would keep that app alive)."""
    key = getattr(route_handler.fn, "__func__", route_handler.fn)
    if key not in _decoders:
        data = route_handler.parsed_fn_signature.parameters.get("data")
        _decoders[key] = msgspec.json.Decoder(data.annotation, strict=True) if data is not None else None
    return _decoders[key]


class StrictBodyRequest(Request):
    async def json(self) -> Any:
        if self._json is Empty:
            if (decoded := self._connection_state.json) is Empty:
                decoded = self._connection_state.json = _decode(await self.body(), self.route_handler)
            self._json = decoded
        return self._json


def _decode(body: bytes, route_handler: Any) -> Any:
    decoder = _decoder(route_handler)
    if decoder is None:
        return decode_json(body or b"null", type_decoders=route_handler.resolve_type_decoders())
    try:
        decoded = decoder.decode(body or b"null")
    except msgspec.ValidationError as error:
        raise ValidationException(extra=[{"key": "data", "source": "body", "message": str(error)}]) from None
    except msgspec.DecodeError:
        return decode_json(body)  # not JSON at all: refused as Litestar refuses it (400 request.malformed_json)
    if b"\\u0000" in body and _has_nul(msgspec.to_builtins(decoded)):  # the scan is all a normal body costs
        message = "Text may not contain a NUL character (\\u0000)."
        raise ValidationException(extra=[{"key": "data", "source": "body", "message": message}])
    return decoded


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False
