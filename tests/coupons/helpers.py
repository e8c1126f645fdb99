"""Coupon templates and campaigns as HQ makes them, and members who hold them."""

from datetime import timedelta

from backend.core.clock import utcnow
from backend.core.db import insert_row
from backend.members.tables import EnrolmentChannel, Member
from tests.conftest import staff_login

ADMIN = "/api/v1/admin"
MINE = "/api/v1/me/coupons"


def window(days: float = 30) -> dict:
    now = utcnow()
    return {"startsAt": (now - timedelta(minutes=1)).isoformat(), "endsAt": (now + timedelta(days=days)).isoformat()}


async def template(client, hq=None, **terms) -> dict:
    hq = hq or await staff_login(client, "hq")
    body = {
        "title": "满50减10",
        "kind": "fixed",
        "valueFen": 1000,
        "minSpendFen": 5000,
        "channels": ["till", "store_code", "mall", "groupbuy"],
        "validDays": 30,
        **terms,
    }
    response = await client.post(f"{ADMIN}/coupon-templates", headers=hq, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def campaign(client, template_id: int, trigger: str, hq=None, **extra) -> dict:
    hq = hq or await staff_login(client, "hq")
    body = {"templateId": template_id, "trigger": trigger, **window(), **extra}
    response = await client.post(f"{ADMIN}/coupon-campaigns", headers=hq, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def coupons_of(client, who: dict, status: str = "usable") -> list[dict]:
    response = await client.get(MINE, headers=who["headers"], params={"status": status})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def members(count: int, store_id: int | None = None) -> list[int]:
    """Members enrolled straight into the table (no campaign sees them enrol)."""
    return [
        await insert_row(Member, enrolled_via=EnrolmentChannel.miniprogram, enrolled_store=store_id)
        for _ in range(count)
    ]
