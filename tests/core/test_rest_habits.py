"""REST habits: a 201 says where to read what it made (`Location`), and an idempotency key may come as the
`Idempotency-Key` header where a body has `idempotencyKey` (the same value, or 422 when both differ)."""

import pytest

from backend.orders.tables import Order
from backend.payments.tables import PaymentRefund
from backend.points.tables import PointsEntry
from tests.cashier.test_till_checkout import ORDERS, payment_code
from tests.conftest import member_login, staff_login
from tests.groupbuy.test_campaigns import ADMIN as GROUPBUY_ADMIN
from tests.groupbuy.test_campaigns import campaign_body as groupbuy_campaign
from tests.groupbuy.test_seat_payments import succeeded_group
from tests.groupbuy.test_seats import open_group
from tests.referrals.test_referrals import ADMIN as REFERRAL_ADMIN
from tests.referrals.test_referrals import campaign_body as referral_campaign


async def till_order(client, demo, cashier, key: str | None, *, header: str | None = None, code: str):
    """A till checkout with this payment code (the same one again for a retry)."""
    body = {"storeId": demo["S001"], "amountFen": 1000, "authCode": code}
    if key is not None:
        body["idempotencyKey"] = key
    return await client.post(ORDERS, headers={**cashier, **({"Idempotency-Key": header} if header else {})}, json=body)


async def test_a_201_says_where_to_read_what_it_made(client, demo):
    cashier1, hq = await staff_login(client, "cashier1"), await staff_login(client, "hq")
    shopper = await member_login(client, openid="oLocation0000000000000001")
    code = await payment_code(client, "oLocationPay000000000001")
    made = {
        "till order": (
            await till_order(client, demo, cashier1, "location-0001", code=code),
            cashier1,
        ),
        "store payment": (
            await client.post(
                f"/api/v1/stores/{demo['S001']}/payments", headers=shopper["headers"], json={"amountFen": 500}
            ),
            shopper["headers"],
        ),
        "store": (
            await client.post("/api/v1/admin/stores", headers=hq, json={"code": "S009", "name": "新店 New"}),
            hq,
        ),
        "referral campaign": (await client.post(REFERRAL_ADMIN, headers=hq, json=referral_campaign()), hq),
        "group-buy campaign": (await client.post(GROUPBUY_ADMIN, headers=hq, json=groupbuy_campaign(demo)), hq),
    }
    campaign_id = made["group-buy campaign"][0].json()["id"]
    made["group-buy seat"] = (await open_group(client, shopper, campaign_id, demo["S001"]), shopper["headers"])
    for what, (response, headers) in made.items():
        assert response.status_code == 201, (what, response.text)
        location = response.headers["location"]
        read = await client.get(location, headers=headers)
        assert read.status_code == 200, (what, location, read.text)
        made_id = response.json()["order"]["id"] if what == "group-buy seat" else response.json().get("id")
        made_id = made_id or response.json()["orderId"]
        assert read.json()["id"] == made_id, (what, location)
    # A replay is no new object: 200, and no Location.
    again = await till_order(client, demo, cashier1, "location-0001", code=code)
    assert again.status_code == 200 and "location" not in again.headers


async def test_the_idempotency_key_may_come_as_a_header(client, demo):
    cashier1 = await staff_login(client, "cashier1")
    code = await payment_code(client, "oHeaderKey00000000000001")
    first = await till_order(client, demo, cashier1, None, header="header-key-0001", code=code)
    assert first.status_code == 201, first.text
    replay = await till_order(client, demo, cashier1, None, header="header-key-0001", code=code)
    assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])
    both = await till_order(client, demo, cashier1, "header-key-0001", header="header-key-0001", code=code)
    assert (both.status_code, both.json()["id"]) == (200, first.json()["id"])  # the same key twice is one key
    assert await Order.count() == 1

    refund = await client.post(
        f"{ORDERS}/{first.json()['id']}/refunds",
        headers={**cashier1, "Idempotency-Key": "refund-by-header-1"},
        json={"amountFen": 100},
    )
    assert refund.status_code == 201, refund.text
    hq = await staff_login(client, "hq")
    member_id = first.json()["memberId"]
    adjusted = await client.post(
        f"/api/v1/admin/members/{member_id}/points-adjustments",
        headers={**hq, "Idempotency-Key": "adjust-by-header-1"},
        json={"delta": 10, "reason": "goodwill"},
    )
    assert adjusted.status_code == 201, adjusted.text


@pytest.mark.parametrize(
    ("key", "header", "source"),
    [
        ("body-key-00000001", "header-key-0000001", "header"),  # both, and they differ
        (None, None, "body"),  # neither
        (None, "not a key!", "header"),  # a header that is not a key
    ],
    ids=["differ", "neither", "malformed-header"],
)
async def test_a_missing_or_conflicting_key_is_422_and_makes_nothing(client, demo, key, header, source):
    cashier1 = await staff_login(client, "cashier1")
    code = await payment_code(client, "oBadKey000000000000000001")
    refused = await till_order(client, demo, cashier1, key, header=header, code=code)
    assert (refused.status_code, refused.json()["code"]) == (422, "request.invalid"), refused.text
    field = refused.json()["details"]["fields"][0]
    assert (field["field"], field["source"]) == ("idempotencyKey", source)
    assert await Order.count() == 0 and await PaymentRefund.count() == 0 and await PointsEntry.count() == 0


async def test_refunds_staff_and_adjustments_say_where_to_read_them_and_only_there(client, demo):
    cashier1, cashier2, hq = [await staff_login(client, name) for name in ("cashier1", "cashier2", "hq")]
    paid = (
        await till_order(client, demo, cashier1, "located-0001", code=await payment_code(client, "oLocated01"))
    ).json()
    other = (
        await till_order(client, demo, cashier1, "located-0002", code=await payment_code(client, "oLocated02"))
    ).json()
    refund = await client.post(
        f"{ORDERS}/{paid['id']}/refunds", headers=cashier1, json={"amountFen": 100, "idempotencyKey": "located-r1"}
    )
    at_s001, _ = await succeeded_group(client, demo)
    seat_refund = await client.post(
        f"/api/v1/cashier/groupbuy/orders/{at_s001['id']}/refunds", headers=cashier1, json={"reason": "bruised"}
    )
    staff = await client.post(
        "/api/v1/admin/staff",
        headers=hq,
        json={
            "username": "located.cashier",
            "password": "long-enough-1",
            "role": "cashier",
            "storeIds": [demo["S001"]],
        },
    )
    adjusted = await client.post(
        f"/api/v1/admin/members/{paid['memberId']}/points-adjustments",
        headers=hq,
        json={"delta": 10, "reason": "goodwill", "idempotencyKey": "located-a1"},
    )
    made = {"refund": (refund, cashier1), "seat refund": (seat_refund, cashier1), "staff": (staff, hq)}
    made["adjustment"] = (adjusted, hq)
    for what, (response, headers) in made.items():
        assert response.status_code == 201, (what, response.text)
        read = await client.get(response.headers["location"], headers=headers)
        assert read.status_code == 200, (what, read.text)
        made_id = {"refund": "refundId", "seat refund": "refundId", "adjustment": "entryId"}.get(what, "id")
        assert read.json()["id" if what in ("staff", "adjustment") else "refundId"] == response.json()[made_id]
    assert (await client.get(refund.headers["location"], headers=cashier1)).json() == refund.json()
    assert (await client.get(adjusted.headers["location"], headers=hq)).json()["delta"] == 10
    replayed = await client.post(
        f"/api/v1/admin/members/{paid['memberId']}/points-adjustments",
        headers=hq,
        json={"delta": 10, "reason": "goodwill", "idempotencyKey": "located-a1"},
    )
    assert replayed.status_code == 200 and "location" not in replayed.headers
    assert replayed.json()["entryId"] == adjusted.json()["entryId"]
    # Another store's staff, another order and another member find nothing there.
    refund_id = refund.json()["refundId"]
    assert (await client.get(refund.headers["location"], headers=cashier2)).status_code == 404
    assert (await client.get(f"{ORDERS}/{other['id']}/refunds/{refund_id}", headers=cashier1)).status_code == 404
    assert (await client.get(seat_refund.headers["location"], headers=cashier2)).status_code == 404
    wrong_order = f"/api/v1/cashier/groupbuy/orders/{at_s001['id']}/refunds/{refund_id}"
    assert (await client.get(wrong_order, headers=cashier1)).json()["code"] == "payments.refund_not_found"
    elsewhere = adjusted.headers["location"].replace(f"/members/{paid['memberId']}/", f"/members/{other['memberId']}/")
    assert (await client.get(elsewhere, headers=hq)).status_code == 404
    assert (await client.get(staff.headers["location"], headers=cashier1)).status_code == 403
