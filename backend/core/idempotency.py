"""What a replayed request must match: a digest of everything it asked for."""

import hashlib
import json
from typing import Any

# json.dumps builds a new encoder for every call with options; this one is built once and writes the same text.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)


def request_hash(**request: Any) -> str:
    """The same request always hashes the same, whatever the order of its fields."""
    return hashlib.sha256(_CANONICAL.encode(request).encode()).hexdigest()
