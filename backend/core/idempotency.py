"""What a replayed request must match: a digest of everything it asked for."""

import hashlib
import json
from typing import Any


def request_hash(**request: Any) -> str:
    """The same request always hashes the same, whatever the order of its fields."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
