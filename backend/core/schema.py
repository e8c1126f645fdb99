import msgspec


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """Base for every request/response body."""
