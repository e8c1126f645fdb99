import msgspec


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Base for every request/response body."""


def given(data: msgspec.Struct) -> dict[str, object]:
    """A patch body's fields that were sent (msgspec.UNSET: left out), by their Python names."""
    return {name: value for name, value in msgspec.structs.asdict(data).items() if value is not msgspec.UNSET}
