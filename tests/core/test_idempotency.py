"""Request hashes: the digests stored rows hold."""

import pytest

from backend.core.idempotency import request_hash


@pytest.mark.parametrize(
    ("request_fields", "digest"),
    [
        (
            {"amount_fen": 1234, "auth_code": "134567890123456789", "member_code": None, "points_to_redeem": 0},
            "d8b237d95a4b848c6fc5f44ef770f054b59d3bf3406f53cc0b448a815f3ddc0b",
        ),
        (
            {"kind": "earn", "member": 7, "points": 12, "store": 1, "source": ["till_order", "42"], "reason": "退款"},
            "af06e2fc5546a1e9ddc79394f01af8a8ae95c0faeaea2dd7872f8d7c1c2bcb95",
        ),
    ],
    ids=["till-order", "ledger-credit"],
)
def test_request_hashes_stay_what_stored_rows_hold(request_fields, digest):
    # Orders and ledger entries keep these digests: a replay after an upgrade must hash the same.
    assert request_hash(**request_fields) == digest
    assert request_hash(**dict(reversed(request_fields.items()))) == digest
