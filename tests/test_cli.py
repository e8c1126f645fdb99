"""The CLI's demo seed is idempotent and its staff can sign in."""

from backend.cli import DEMO_STAFF, DEMO_STORES, demo_password, seed_demo
from backend.stores.tables import Staff, StaffStore, Store


async def test_seed_demo_twice_gives_the_same_data(client):
    first = await seed_demo("demo-password-123")
    assert len(first) == len(DEMO_STORES) + len(DEMO_STAFF) + 2  # and a referral and a group-buy campaign
    assert first[-2:] == ["referral campaign", "group-buy campaign"]
    assert await seed_demo("a-different-password") == []
    assert sorted(r["code"] for r in await Store.select(Store.code)) == ["S001", "S002", "S003"]
    assert await Staff.count() == 4 and await StaffStore.count() == 3
    response = await client.post(
        "/api/v1/auth/staff/login", json={"username": "cashier2", "password": "demo-password-123"}
    )
    assert response.status_code == 200
    s002 = (await Store.select(Store.id).where(Store.code == "S002").first())["id"]
    assert response.json()["staff"]["storeIds"] == [s002]


def test_demo_password_is_generated_once_or_taken_from_the_environment(tmp_path):
    password, generated = demo_password({}, tmp_path)
    assert generated and len(password) >= 12
    assert demo_password({}, tmp_path) == (password, False)
    assert demo_password({"DEMO_PASSWORD": "from-env-pass"}, tmp_path) == ("from-env-pass", False)
