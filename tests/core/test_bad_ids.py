"""An id outside what an id can be (1 to 2**31 - 1, a 32-bit Serial on PostgreSQL) is a bad request, on every
route, in a path, a query or a body: 422 `request.invalid`, nothing changed, never a 500 from the database
refusing the number. A well-formed id that names nothing stays 404 (the routes' own tests)."""

import re

import pytest

from backend.app import create_app
from backend.orders.tables import Order
from backend.payments.tables import PaymentRefund
from backend.points.tables import PointsEntry
from tests.conftest import member_login, staff_login

NOT_IDS = (0, -1, 2**31, 2**64, 10**30)
INT_PARAMETER = re.compile(r"\{(\w+):int\}")


def _routes_with_ids() -> list[tuple[str, str]]:
    found = set()
    for route in create_app().routes:
        if INT_PARAMETER.search(route.path):
            for method in getattr(route, "methods", ()):
                if method not in ("HEAD", "OPTIONS"):
                    found.add((method, route.path))
    return sorted(found)


ROUTES = _routes_with_ids()


def test_the_sweep_covers_the_routes_named_in_the_contract():
    paths = {path for _, path in ROUTES}
    for path in (
        "/api/v1/cashier/orders/{order_id:int}",
        "/api/v1/cashier/orders/{order_id:int}/refunds",
        "/api/v1/groupbuy/groups/{group_id:int}",
        "/api/v1/groupbuy/campaigns/{campaign_id:int}",
        "/api/v1/referral-campaigns/{campaign_id:int}",
        "/api/v1/admin/members/{member_id:int}/points-adjustments",
        "/api/v1/stores/{store_id:int}/payments",
        "/api/v1/me/orders/{order_id:int}",
    ):
        assert path in paths
    assert len(ROUTES) >= 15


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_every_route_refuses_a_number_that_is_not_an_id(client, demo, method, path):
    callers = {
        "staff": await staff_login(client, "hq"),
        "member": (await member_login(client, openid="oNotAnId000000000000000001"))["headers"],
    }
    for not_an_id in NOT_IDS:
        url = INT_PARAMETER.sub(str(not_an_id), path)
        answers = {}
        for who, headers in callers.items():
            response = await client.request(method, url, headers=headers, json={} if method != "GET" else None)
            assert response.status_code < 500, (who, url, response.text)
            answers[who] = (response.status_code, response.json()["code"])
        # The caller the route is for is told the number is not an id (the other one is refused its role).
        assert (422, "request.invalid") in answers.values(), (url, answers)
        assert set(answers.values()) <= {(422, "request.invalid"), (403, "auth.forbidden")}, (url, answers)


async def test_the_routes_named_in_the_report_refuse_it_with_a_valid_body_and_change_nothing(client, demo):
    hq = await staff_login(client, "hq")
    shopper = await member_login(client, openid="oNotAnId000000000000000002")
    before = (await Order.count(), await PaymentRefund.count(), await PointsEntry.count())
    huge = 2**64
    calls = [
        ("GET", f"/api/v1/cashier/orders/{huge}", hq, None, None),
        (
            "POST",
            f"/api/v1/cashier/orders/{huge}/refunds",
            hq,
            {"amountFen": 100, "idempotencyKey": "refund-0001"},
            None,
        ),
        ("GET", f"/api/v1/groupbuy/groups/{huge}", hq, None, None),
        ("GET", f"/api/v1/groupbuy/campaigns/{huge}", hq, None, None),
        ("GET", f"/api/v1/referral-campaigns/{huge}", hq, None, None),
        (
            "POST",
            f"/api/v1/admin/members/{huge}/points-adjustments",
            hq,
            {"delta": 10, "reason": "goodwill", "idempotencyKey": "adjust-0001"},
            None,
        ),
        ("GET", "/api/v1/me/posters", shopper["headers"], None, {"campaignId": str(huge)}),
        ("GET", "/api/v1/me/posters", shopper["headers"], None, {"groupId": "0"}),
        ("POST", f"/api/v1/stores/{huge}/payments", shopper["headers"], {"amountFen": 100}, None),
        (
            "POST",
            "/api/v1/cashier/orders",
            hq,
            {"storeId": 2**40, "amountFen": 100, "authCode": "134567890123456789", "idempotencyKey": "till-0001"},
            None,
        ),
    ]
    for method, url, headers, body, params in calls:
        response = await client.request(method, url, headers=headers, json=body, params=params)
        assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), (url, response.text)
        fields = {field["field"] for field in response.json()["details"]["fields"]}
        assert fields & {
            "order_id",
            "group_id",
            "campaign_id",
            "member_id",
            "store_id",
            "campaignId",
            "groupId",
            "storeId",
        }
    assert (await Order.count(), await PaymentRefund.count(), await PointsEntry.count()) == before
