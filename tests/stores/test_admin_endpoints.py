"""HQ creates stores and staff; nobody else can, and bad input creates nothing."""

import pytest

from backend.stores.tables import Staff, StaffStore, Store
from tests.conftest import member_login, staff_login

STORE = {
    "code": "S100",
    "name": "新店 New",
    "address": "9 Lake Road",
    "pointsPerYuan": 3,
    "landingText": "欢迎",
    "landingUrl": "https://example.com/welcome",
}


async def test_hq_creates_a_store_that_appears_in_the_public_list(client, demo):
    hq = await staff_login(client, "hq")
    response = await client.post("/api/v1/admin/stores", json=STORE, headers=hq)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["code"] == "S100" and created["pointsPerYuan"] == 3 and created["active"] is True
    assert created["createdAt"].endswith("Z") or "+" in created["createdAt"]
    public = (await client.get("/api/v1/stores")).json()
    assert "S100" in [s["code"] for s in public]
    assert all("pointsPerYuan" not in s and "landingText" not in s for s in public)


async def test_duplicate_store_code_is_409_and_stores_nothing(client, demo):
    hq = await staff_login(client, "hq")
    before = await Store.count()
    response = await client.post("/api/v1/admin/stores", json={**STORE, "code": "S001"}, headers=hq)
    assert response.status_code == 409 and response.json()["code"] == "stores.code_taken"
    assert await Store.count() == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**STORE, "code": "bad code!"}, id="bad-code"),
        pytest.param({**STORE, "pointsPerYuan": -1}, id="negative-rate"),
        pytest.param({**STORE, "pointsPerYuan": 1.5}, id="float-rate"),
        pytest.param({**STORE, "landingUrl": "javascript:alert(1)"}, id="bad-url"),
        pytest.param({**STORE, "active": False, "id": 1}, id="unknown-fields"),
        pytest.param({"name": "no code"}, id="missing-code"),
    ],
)
async def test_bad_store_bodies_are_422(client, demo, body):
    hq = await staff_login(client, "hq")
    before = await Store.count()
    response = await client.post("/api/v1/admin/stores", json=body, headers=hq)
    assert response.status_code == 422 and response.json()["code"] == "request.invalid"
    assert await Store.count() == before


async def test_only_hq_may_use_hq_endpoints(client, demo):
    member = await member_login(client)
    no_token = await client.post("/api/v1/admin/stores", json=STORE)
    assert no_token.status_code == 401 and no_token.json()["code"] == "auth.unauthenticated"
    for who in ("cashier1", "manager1"):
        response = await client.post("/api/v1/admin/stores", json=STORE, headers=await staff_login(client, who))
        assert response.status_code == 403 and response.json()["code"] == "auth.forbidden"
    response = await client.post(
        "/api/v1/admin/staff",
        headers=member["headers"],
        json={"username": "evil", "password": "x" * 10, "role": "hq_admin"},
    )
    assert response.status_code == 403
    bogus = await client.post("/api/v1/admin/stores", json=STORE, headers={"Authorization": "Bearer not.a.jwt"})
    assert bogus.status_code == 401
    assert not await Store.exists().where(Store.code == "S100")
    assert not await Staff.exists().where(Staff.username == "evil")


async def test_hq_creates_staff_who_can_sign_in_for_their_stores(client, demo):
    hq = await staff_login(client, "hq")
    response = await client.post(
        "/api/v1/admin/staff",
        headers=hq,
        json={
            "username": "cashier9",
            "password": "long-enough-pw",
            "role": "cashier",
            "storeIds": [demo["S002"], demo["S003"], demo["S002"]],
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["storeIds"] == sorted([demo["S002"], demo["S003"]])
    assert "password" not in response.text.lower()
    login = await client.post("/api/v1/auth/staff/login", json={"username": "cashier9", "password": "long-enough-pw"})
    assert login.status_code == 200
    assert login.json()["staff"] == {
        "id": response.json()["id"],
        "username": "cashier9",
        "role": "cashier",
        "storeIds": sorted([demo["S002"], demo["S003"]]),
        "displayName": "",
        "active": True,
        "createdAt": response.json()["createdAt"],
    }
    stored = await Staff.select(Staff.password_hash).where(Staff.username == "cashier9").first()
    assert stored["password_hash"].startswith("$argon2id$")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param(
            {"username": "x9", "password": "long-enough-pw", "role": "cashier", "storeIds": [1]},
            422,
            "request.invalid",
            id="short-username",
        ),
        pytest.param(
            {"username": "newbie", "password": "short", "role": "cashier", "storeIds": [1]},
            422,
            "request.invalid",
            id="short-password",
        ),
        pytest.param(
            {"username": "newbie", "password": "long-enough-pw", "role": "owner", "storeIds": [1]},
            422,
            "request.invalid",
            id="unknown-role",
        ),
        pytest.param(
            {"username": "newbie", "password": "long-enough-pw", "role": "cashier", "storeIds": []},
            422,
            "staff.stores_required",
            id="cashier-without-store",
        ),
        pytest.param(
            {"username": "newbie", "password": "long-enough-pw", "role": "cashier", "storeIds": [1, 999]},
            422,
            "staff.unknown_store",
            id="unknown-store",
        ),
        pytest.param(
            {"username": "cashier1", "password": "long-enough-pw", "role": "cashier", "storeIds": [1]},
            409,
            "staff.username_taken",
            id="username-taken",
        ),
    ],
)
async def test_bad_staff_requests_create_nothing(client, demo, body, status, code):
    hq = await staff_login(client, "hq")
    staff_before, links_before = await Staff.count(), await StaffStore.count()
    response = await client.post("/api/v1/admin/staff", headers=hq, json=body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert (await Staff.count(), await StaffStore.count()) == (staff_before, links_before)
