"""A staff member acts only for their stores: another store's objects are 404 to them."""

import asyncio

from tests.conftest import member_login, staff_login


async def test_cashier_sees_only_their_own_store(client, demo):
    cashier = await staff_login(client, "cashier1")
    own = await client.get(f"/api/v1/cashier/stores/{demo['S001']}", headers=cashier)
    assert own.status_code == 200 and own.json()["code"] == "S001"
    other = await client.get(f"/api/v1/cashier/stores/{demo['S002']}", headers=cashier)
    assert other.status_code == 404 and other.json()["code"] == "request.not_found"
    missing = await client.get("/api/v1/cashier/stores/999999", headers=cashier)
    assert missing.status_code == 404


async def test_hq_acts_for_every_store(client, demo):
    hq = await staff_login(client, "hq")
    for code in ("S001", "S002", "S003"):
        assert (await client.get(f"/api/v1/cashier/stores/{demo[code]}", headers=hq)).status_code == 200


async def test_member_token_is_refused_on_staff_endpoints(client, demo):
    member = await member_login(client)
    response = await client.get(f"/api/v1/cashier/stores/{demo['S001']}", headers=member["headers"])
    assert response.status_code == 403 and response.json()["code"] == "auth.forbidden"
    assert (await client.get("/api/v1/cashier/me", headers=member["headers"])).status_code == 403
    assert (await client.get("/api/v1/cashier/me")).status_code == 401


async def test_staff_profile_names_role_and_stores(client, demo):
    response = await client.get("/api/v1/cashier/me", headers=await staff_login(client, "manager1"))
    assert response.json() == {
        "id": demo["manager1"],
        "username": "manager1",
        "role": "store_manager",
        "storeIds": [demo["S001"]],
        "displayName": "",
        "active": True,
        "createdAt": None,
    }


async def test_deactivated_staff_token_stops_working(client, demo):
    from backend.stores.tables import Staff

    cashier = await staff_login(client, "cashier1")
    await Staff.update({Staff.active: False}).where(Staff.id == demo["cashier1"])
    response = await client.get("/api/v1/cashier/me", headers=cashier)
    assert response.status_code == 401


async def test_a_staff_token_in_use_stops_working_once_deactivated(client, demo):
    from backend.stores import service
    from backend.stores.tables import Staff

    cashier = await staff_login(client, "cashier1")
    assert (await client.get("/api/v1/cashier/me", headers=cashier)).status_code == 200
    await Staff.update({Staff.active: False}).where(Staff.id == demo["cashier1"])
    await asyncio.sleep(service.RECENT_SECONDS)  # what a worker read is kept at most this long
    response = await client.get("/api/v1/cashier/me", headers=cashier)
    assert response.status_code == 401 and response.json()["code"] == "auth.unauthenticated"
