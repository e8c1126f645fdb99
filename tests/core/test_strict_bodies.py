"""A JSON body is decoded strictly into its handler's type: a number sent as a string, a float or a boolean is
422 naming the field, and makes nothing; a body nested 100,000 deep or a list past its bound is refused at
once, never a 500."""

import gc
import json

import pytest
from litestar import Litestar

from backend.app import create_app
from backend.orders.tables import Order
from backend.sandbox.tables import SandboxTrade
from backend.settings import Settings
from backend.stores.tables import Staff
from tests.cashier.test_till_checkout import ORDERS, payment_code
from tests.conftest import member_login, serve, staff_login

NOT_INTEGERS = ['"1000"', "1e3", "1000.0", "true", '"1e3"', "null"]


def _error_field(response) -> str | None:
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), response.text
    return response.json()["details"]["fields"][0]["field"]


@pytest.mark.parametrize("amount", NOT_INTEGERS)
async def test_money_that_is_not_a_json_integer_makes_no_order_at_the_till(client, demo, amount):
    cashier1 = await staff_login(client, "cashier1")
    code = await payment_code(client, "oStrictTill00000000000001")
    body = (
        f'{{"storeId": {demo["S001"]}, "amountFen": {amount}, "authCode": "{code}", "idempotencyKey": "strict-0001"}}'
    )
    response = await client.post(ORDERS, headers={**cashier1, "content-type": "application/json"}, content=body)
    assert _error_field(response) == "amountFen"
    assert await Order.count() == 0 and await SandboxTrade.count() == 0
    # The same body with an integer is taken: the refusal was the number's type, nothing else.
    taken = await client.post(ORDERS, headers=cashier1, json={**json.loads(body.replace(amount, "1000"))})
    assert taken.status_code == 201, taken.text
    assert (taken.json()["status"], taken.json()["amountFen"]) == ("paid", 1000)


@pytest.mark.parametrize("amount", NOT_INTEGERS)
async def test_money_that_is_not_a_json_integer_makes_no_order_at_the_store_code(client, demo, amount):
    shopper = await member_login(client, openid="oStrictStore0000000000001")
    response = await client.post(
        f"/api/v1/stores/{demo['S001']}/payments",
        headers={**shopper["headers"], "content-type": "application/json"},
        content=f'{{"amountFen": {amount}}}',
    )
    assert _error_field(response) == "amountFen"
    assert await Order.count() == 0


@pytest.mark.parametrize("where", ["top", "field", "list"])
async def test_a_body_nested_a_hundred_thousand_deep_is_refused_at_once(client, demo, where):
    cashier1 = await staff_login(client, "cashier1")
    deep = "[" * 100_000 + "]" * 100_000
    body = {
        "top": deep,
        "field": f'{{"storeId": {deep}, "amountFen": 1000}}',
        "list": f'{{"storeId": {demo["S001"]}, "amountFen": 1000, "authCode": ["{deep}"]}}',
    }[where]
    response = await client.post(ORDERS, headers={**cashier1, "content-type": "application/json"}, content=body)
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), response.text[:300]
    assert await Order.count() == 0


async def test_a_list_past_its_bound_is_refused(client, demo):
    hq = await staff_login(client, "hq")
    response = await client.post(
        "/api/v1/admin/staff",
        headers=hq,
        json={"username": "many.stores", "password": "long-enough-1", "role": "store_manager", "storeIds": [1] * 501},
    )
    assert _error_field(response) == "storeIds"


async def test_text_with_a_nul_character_is_refused_and_changes_nothing(client, demo):
    # PostgreSQL cannot hold a NUL in text: without the check, this pickup was a 500 there.
    cashier1 = await staff_login(client, "cashier1")
    response = await client.post(
        "/api/v1/cashier/pickups", headers=cashier1, json={"pickupCode": "12\x0034", "storeId": demo["S001"]}
    )
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), response.text
    assert "NUL" in response.json()["details"]["fields"][0]["message"]
    hq = await staff_login(client, "hq")
    before = await Staff.count()
    staff = {"username": "nul.name", "password": "long-enough-1", "role": "cashier", "storeIds": [demo["S001"]]}
    refused = await client.post("/api/v1/admin/staff", headers=hq, json={**staff, "password": "long-enough-\x00"})
    assert refused.status_code == 422 and "NUL" in refused.json()["details"]["fields"][0]["message"]
    assert await Staff.count() == before
    # An escaped backslash before "u0000" is text, not a NUL: taken.
    taken = await client.post("/api/v1/admin/staff", headers=hq, json={**staff, "password": "long-enough-\\u0000"})
    assert taken.status_code == 201, taken.text
    assert await Staff.count() == before + 1


async def test_a_nul_character_in_a_path_or_query_is_refused(client, demo):
    hq = await staff_login(client, "hq")
    for path in ("/api/v1/share/ab%00cd", "/api/v1/avatars/ab%00cd.jpg"):
        answer = await client.get(path)
        assert answer.status_code in (400, 404, 422) and answer.json()["code"] != "internal.error", (path, answer.text)
    answer = await client.get("/api/v1/admin/groupbuy/campaigns/1/demand?format=c%00sv", headers=hq)
    assert answer.status_code in (400, 404, 422), answer.text


async def test_the_token_and_its_role_are_checked_before_the_body(client, demo):
    """A request without the right token is 401, and one with the wrong role 403, whatever its body holds."""
    bad_body = {"storeId": "S001", "amountFen": "lots"}
    unsigned = await client.post(ORDERS, json=bad_body)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "auth.unauthenticated"), unsigned.text
    shopper = await member_login(client, openid="oTokenFirst0000000000001")
    wrong_kind = await client.post(ORDERS, headers=shopper["headers"], json=bad_body)
    assert wrong_kind.status_code == 403, wrong_kind.text
    cashier1 = await staff_login(client, "cashier1")
    wrong_role = await client.post("/api/v1/admin/staff", headers=cashier1, json={"username": 7})
    assert (wrong_role.status_code, wrong_role.json()["code"]) == (403, "auth.forbidden"), wrong_role.text
    # With the right token the same body is the 422 it deserves.
    assert (await client.post(ORDERS, headers=cashier1, json=bad_body)).status_code == 422
    assert await Order.count() == 0


async def test_an_app_that_decoded_bodies_is_not_kept_alive_by_its_decoders(demo):
    """The decoders are shared by every app of the process: one that is done with is collected, not held by
    its controllers' handlers (a process that builds apps, as the suite does, would grow without end)."""

    def apps() -> int:
        gc.collect()
        return sum(isinstance(thing, Litestar) for thing in gc.get_objects())

    before = apps()
    async with serve(create_app(Settings.from_env(), in_process_notifications=True)) as client:
        cashier1 = await staff_login(client, "cashier1")
        code = await payment_code(client, "oStrictKept0000000000001")
        body = {"storeId": demo["S001"], "amountFen": 1000, "authCode": code, "idempotencyKey": "kept-0001"}
        assert (await client.post(ORDERS, headers=cashier1, json=body)).status_code == 201
        assert apps() == before + 1
    del client
    assert apps() == before
