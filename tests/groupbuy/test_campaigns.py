"""HQ creates group-buy campaigns; shoppers see the open ones with the stock left."""

from datetime import UTC, datetime, timedelta

import pytest

from backend.groupbuy.tables import Campaign, CampaignStore
from tests.conftest import member_login, staff_login

ADMIN = "/api/v1/admin/groupbuy/campaigns"


def campaign_body(demo, **changes) -> dict:
    now = datetime.now(UTC)
    body = {
        "title": "明日榴莲 拼团",
        "productName": "金枕榴莲 (约 3 kg)",
        "priceFen": 9900,
        "originalPriceFen": 15800,
        "groupSize": 3,
        "groupTtlMinutes": 1440,
        "stock": 30,
        "perMemberLimit": 2,
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now + timedelta(days=2)).isoformat(),
        "pickupStoreIds": [demo["S002"], demo["S001"]],
        "pickupDate": (now + timedelta(days=3)).date().isoformat(),
    }
    return {**body, **changes}


async def test_hq_creates_a_campaign_that_shoppers_then_see(client, demo):
    hq = await staff_login(client, "hq")
    response = await client.post(ADMIN, headers=hq, json=campaign_body(demo, productImage="durian/golden.jpg"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["stock"], created["stockLeft"], created["paymentWindowMinutes"], created["virtualFill"]) == (
        30,
        30,
        15,
        False,
    )
    assert [s["code"] for s in created["pickupStores"]] == ["S001", "S002"]
    assert created["productName"] == "金枕榴莲 (约 3 kg)" and created["productImage"] == "durian/golden.jpg"

    shopper = await member_login(client, openid="oGroupBuyer000000000000001")
    listed = await client.get("/api/v1/groupbuy/campaigns", headers=shopper["headers"])
    assert [c["id"] for c in listed.json()] == [created["id"]]
    one = await client.get(f"/api/v1/groupbuy/campaigns/{created['id']}")
    assert one.status_code == 200 and one.json() == created
    missing = await client.get("/api/v1/groupbuy/campaigns/999999")
    assert (missing.status_code, missing.json()["code"]) == (404, "groupbuy.campaign_not_found")


async def test_campaigns_not_open_now_are_not_listed(client, demo):
    hq = await staff_login(client, "hq")
    now = datetime.now(UTC)
    later = campaign_body(
        demo, startsAt=(now + timedelta(days=1)).isoformat(), endsAt=(now + timedelta(days=2)).isoformat()
    )
    assert (await client.post(ADMIN, headers=hq, json=later)).status_code == 201
    assert (await client.get("/api/v1/groupbuy/campaigns")).json() == []


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"priceFen": 15801}, "priceFen"),
        ({"pickupStoreIds": []}, "pickupStoreIds"),
        ({"startsAt": "2026-12-02T10:00:00+08:00", "endsAt": "2026-12-01T10:00:00+08:00"}, "endsAt"),
        ({"endsAt": "2020-01-01T00:00:00+00:00", "startsAt": "2019-12-01T00:00:00+00:00"}, "endsAt"),
        ({"startsAt": "2026-12-01T10:00:00"}, "startsAt"),
        ({"stock": 2}, "stock"),
        ({"pickupDate": "2020-01-01"}, "pickupDate"),
    ],
)
async def test_a_campaign_that_does_not_add_up_is_refused(client, demo, changes, field):
    hq = await staff_login(client, "hq")
    response = await client.post(ADMIN, headers=hq, json=campaign_body(demo, **changes))
    assert (response.status_code, response.json()["code"]) == (422, "groupbuy.campaign_invalid"), response.text
    assert field in response.json()["details"]
    assert await Campaign.count() == 0 and await CampaignStore.count() == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"groupSize": 1},
        {"groupSize": 51},
        {"groupTtlMinutes": 14},
        {"groupTtlMinutes": 7 * 1440 + 1},
        {"priceFen": 0},
        {"priceFen": 99.5},
        {"stock": 0},
        {"perMemberLimit": 0},
        {"paymentWindowMinutes": 0},
        {"productImage": "https://evil.example.com/x.jpg"},
        {"productImage": "../../etc/passwd"},
        {"productImage": "durian/../../etc/passwd"},
        {"productImage": "/etc/passwd"},
        {"stockLeft": 5},
        {"title": ""},
    ],
)
async def test_malformed_campaigns_are_refused_by_the_schema(client, demo, changes):
    hq = await staff_login(client, "hq")
    response = await client.post(ADMIN, headers=hq, json=campaign_body(demo, **changes))
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), response.text
    assert await Campaign.count() == 0


async def test_only_hq_creates_campaigns_and_only_with_open_stores(client, demo):
    for username in ("manager1", "cashier1"):
        response = await client.post(ADMIN, headers=await staff_login(client, username), json=campaign_body(demo))
        assert response.status_code == 403
    shopper = await member_login(client, openid="oNotHQ00000000000000000001")
    assert (await client.post(ADMIN, headers=shopper["headers"], json=campaign_body(demo))).status_code == 403
    assert (await client.post(ADMIN, json=campaign_body(demo))).status_code == 401
    hq = await staff_login(client, "hq")
    unknown = await client.post(ADMIN, headers=hq, json=campaign_body(demo, pickupStoreIds=[demo["S001"], 999999]))
    assert unknown.status_code == 422 and unknown.json()["details"]["pickupStoreIds"] == [999999]
    assert await Campaign.count() == 0


async def test_a_campaign_may_sell_a_catalogue_sku_and_its_seats_name_it(client, demo):
    hq = await staff_login(client, "hq")
    product = await client.post(
        "/api/v1/admin/products",
        headers=hq,
        json={"title": "金枕榴莲", "skus": [{"code": "JZ-3KG", "spec": "约 3 kg", "priceFen": 15800}]},
    )
    sku_id = product.json()["skus"][0]["id"]
    body = campaign_body(demo, skuId=sku_id)
    del body["productName"]
    made = await client.post(ADMIN, headers=hq, json=body)
    assert made.status_code == 201, made.text
    assert (made.json()["skuId"], made.json()["productName"]) == (sku_id, "金枕榴莲 约 3 kg")
    free_text = await client.post(ADMIN, headers=hq, json=campaign_body(demo))
    assert (free_text.json()["skuId"], free_text.json()["productName"]) == (None, "金枕榴莲 (约 3 kg)")

    shopper = await member_login(client, openid="oSkuCampaign00000000000000")
    seat = await client.post(
        f"/api/v1/groupbuy/campaigns/{made.json()['id']}/groups",
        headers=shopper["headers"],
        json={"pickupStoreId": demo["S001"]},
    )
    assert seat.status_code == 201, seat.text
    order = await client.get(f"/api/v1/me/orders/{seat.json()['order']['id']}", headers=shopper["headers"])
    assert [(line["skuId"], line["title"]) for line in order.json()["lines"]] == [(sku_id, "金枕榴莲 约 3 kg")]

    unknown = await client.post(ADMIN, headers=hq, json=campaign_body(demo, skuId=999_999))
    assert (unknown.status_code, unknown.json()["details"]) == (422, {"skuId": 999_999})
    nameless = campaign_body(demo)
    del nameless["productName"]
    neither = await client.post(ADMIN, headers=hq, json=nameless)
    assert (neither.status_code, neither.json()["code"]) == (422, "groupbuy.campaign_invalid")
    assert "productName" in neither.json()["details"]
    assert await Campaign.count() == 2
