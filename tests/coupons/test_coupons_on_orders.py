"""A member's coupon used once on an order of any channel, and given back when the order closes unpaid or is
refunded in full."""

import asyncio
import time
from datetime import timedelta

import pytest

from backend.core.clock import utcnow
from backend.coupons.tables import Coupon, CouponStatus
from backend.members.code import MemberCodes
from backend.orders.tables import Order
from backend.settings import Settings
from tests.cashier.test_refunds import refund
from tests.cashier.test_till_checkout import FAST, payment_code, scan
from tests.conftest import member_login, staff_login
from tests.coupons.helpers import ADMIN, campaign, coupons_of, template
from tests.mall.helpers import confirm, place, range_at_stores, shopper


@pytest.fixture
async def till(make_client):
    async with make_client(**FAST, refund_query_interval_seconds=0.05) as client:
        yield client


async def member_code(client, who: dict) -> str:
    return (await client.get("/api/v1/me/member-code", headers=who["headers"])).json()["code"]


async def test_hq_alone_makes_templates_and_each_bad_term_is_named(till, demo):
    hq, cashier = await staff_login(till, "hq"), await staff_login(till, "cashier1")
    good = {
        "title": "九折",
        "kind": "percent",
        "percentOff": 10,
        "minSpendFen": 0,
        "channels": ["mall"],
        "validDays": 7,
    }
    assert (await till.post(f"{ADMIN}/coupon-templates", json=good)).status_code == 401
    assert (await till.post(f"{ADMIN}/coupon-templates", headers=cashier, json=good)).status_code == 403
    shopper_ = await member_login(till, openid="oCouponTerms0000000000001")
    assert (await till.post(f"{ADMIN}/coupon-templates", headers=shopper_["headers"], json=good)).status_code == 403
    now = utcnow()
    for bad, field in (
        ({"kind": "fixed"}, "valueFen"),
        ({"valueFen": 500}, "valueFen"),
        ({"validFrom": now.isoformat(), "validUntil": (now + timedelta(days=1)).isoformat()}, "validDays"),
        ({"validDays": None, "validUntil": (now + timedelta(days=1)).isoformat()}, "validUntil"),
        (
            {"validDays": None, "validFrom": (now - timedelta(days=2)).isoformat(), "validUntil": now.isoformat()},
            "validUntil",
        ),
        ({"storeIds": [demo["S001"], 999_999]}, "storeIds"),
        ({"productIds": [999_999]}, "productIds"),
        ({"channels": ["mall", "mall"]}, "channels"),
        ({"totalLimit": 1, "perMemberLimit": 2}, "totalLimit"),
    ):
        response = await till.post(f"{ADMIN}/coupon-templates", headers=hq, json={**good, **bad})
        assert (response.status_code, response.json()["code"]) == (422, "coupons.template_invalid"), bad
        assert field in response.json()["details"], response.json()
    for bad in ({"pointsBalance": 1}, {"channels": ["membership"]}, {"percentOff": 100}, {"channels": []}):
        response = await till.post(f"{ADMIN}/coupon-templates", headers=hq, json={**good, **bad})
        assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), bad
    made = await till.post(f"{ADMIN}/coupon-templates", headers=hq, json=good)
    assert made.status_code == 201 and made.json()["issuedCount"] == 0
    assert (await till.get(f"{ADMIN}/coupon-templates/{made.json()['id']}", headers=hq)).json()["title"] == "九折"
    assert [t["id"] for t in (await till.get(f"{ADMIN}/coupon-templates", headers=hq)).json()["items"]] == [
        made.json()["id"]
    ]


async def test_a_walk_in_payer_leaves_with_the_welcome_coupon_uses_it_and_a_full_refund_gives_it_back(till, demo):
    welcome = await template(till, title="新人券", valueFen=1000, minSpendFen=5000, channels=["till"])
    await campaign(till, welcome["id"], "enrolment")
    cashier1 = await staff_login(till, "cashier1")
    openid = "oWelcomeCoupon000000000001"
    first = await scan(till, cashier1, demo["S001"], await payment_code(till, openid), "welcome-0001", amount=2000)
    assert first.json()["memberEnrolled"] is True
    member = await member_login(till, openid=openid)
    (coupon,) = await coupons_of(till, member)
    assert (coupon["title"], coupon["valueFen"], coupon["status"], coupon["channels"]) == (
        "新人券",
        1000,
        "usable",
        ["till"],
    )
    # The next checkout with the member's code uses it: 10 yuan off 60, points on the 50 paid.
    second_request = {
        "auth_code": await payment_code(till, openid),
        "key": "welcome-0002",
        "amount": 6000,
        "memberCode": await member_code(till, member),
        "couponId": coupon["id"],
    }
    second = await scan(till, cashier1, demo["S001"], **second_request)
    body = second.json()
    assert second.status_code == 201, second.text
    assert (body["status"], body["couponId"], body["couponDiscountFen"], body["discountFen"]) == (
        "paid",
        coupon["id"],
        1000,
        1000,
    )
    assert (body["payableFen"], body["paidFen"], body["pointsEarned"]) == (5000, 5000, 100)
    assert await coupons_of(till, member) == []
    replayed = await scan(till, cashier1, demo["S001"], **second_request)  # the till retries: the same order
    assert (replayed.status_code, replayed.json()["id"], replayed.json()["couponId"]) == (200, body["id"], coupon["id"])
    (used,) = await coupons_of(till, member, "used")
    assert (used["orderId"], used["status"]) == (body["id"], "used")
    # A partial refund keeps it used; the refund that makes the order whole gives it back.
    assert (await refund(till, cashier1, body["id"], 2000, "welcome-refund-1")).json()["status"] == "succeeded"
    assert await coupons_of(till, member) == []
    assert (await refund(till, cashier1, body["id"], 3000, "welcome-refund-2")).json()["status"] == "succeeded"
    (back,) = await coupons_of(till, member)
    assert (back["id"], back["status"], back["orderId"]) == (coupon["id"], "usable", None)


async def test_every_refusal_names_its_reason_and_places_nothing(till, demo):
    hq = await staff_login(till, "hq")
    only_s002 = await template(till, hq, title="S002 专享", storeIds=[demo["S002"]], minSpendFen=0)
    mall_only = await template(till, hq, title="商城券", channels=["mall"], minSpendFen=0)
    big_spend = await template(till, hq, title="满100减10", minSpendFen=10_000)
    soon = await template(
        till,
        hq,
        title="下周券",
        validDays=None,
        validFrom=(utcnow() + timedelta(days=7)).isoformat(),
        validUntil=(utcnow() + timedelta(days=14)).isoformat(),
    )
    claimed = {}
    member = await member_login(till, openid="oRefusedCoupons00000000001")
    other = await member_login(till, openid="oOtherCouponHolder00000001")
    for made in (only_s002, mall_only, big_spend, soon):
        within = {"endsAt": made["validUntil"]} if made["validUntil"] else {}  # a campaign ends within its window
        claim_campaign = await campaign(till, made["id"], "claim", hq, **within)
        answer = await till.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=member["headers"])
        assert answer.status_code == 201, answer.text
        claimed[made["title"]] = answer.json()["id"]
    theirs = await till.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=other["headers"])
    expired = claimed["满100减10"]
    cashier1 = await staff_login(till, "cashier1")
    for coupon_id, reason in (
        (claimed["S002 专享"], "store"),
        (claimed["商城券"], "channel"),
        (claimed["满100减10"], "min_spend"),
        (claimed["下周券"], "not_started"),
        (theirs.json()["id"], "not_yours"),
        (999_999, "not_yours"),
    ):
        response = await scan(
            till,
            cashier1,
            demo["S001"],
            await payment_code(till, "oRefusedCoupons00000000001"),
            f"refused-{reason}-{coupon_id}",
            amount=6000,
            memberCode=await member_code(till, member),
            couponId=coupon_id,
        )
        assert (response.status_code, response.json()["code"]) == (422, "coupons.not_usable"), response.text
        assert response.json()["details"]["reason"] == reason
    await Coupon.update({Coupon.valid_until: utcnow() - timedelta(seconds=1)}).where(Coupon.id == expired)
    response = await scan(
        till,
        cashier1,
        demo["S001"],
        await payment_code(till, "oRefusedCoupons00000000001"),
        "refused-expired",
        amount=20_000,
        memberCode=await member_code(till, member),
        couponId=expired,
    )
    assert (response.status_code, response.json()["details"]["reason"]) == (422, "expired")
    (shown,) = await coupons_of(till, member, "expired")
    assert shown["id"] == expired and shown["status"] == "expired"
    # Without a member code the till knows no member: the coupon is nobody's there.
    anonymous = await scan(
        till, cashier1, demo["S001"], await payment_code(till, "oRefusedCoupons00000000001"), "refused-anon",
        amount=6000, couponId=claimed["S002 专享"],
    )  # fmt: skip
    assert anonymous.json()["details"]["reason"] == "not_yours"
    assert await Order.count() == 0
    assert await Coupon.count().where(Coupon.status == CouponStatus.used) == 0


async def test_a_payment_that_fails_gives_its_coupon_back(till, demo):
    made = await template(till, minSpendFen=0)
    claim_campaign = await campaign(till, made["id"], "claim")
    openid = "oFailedPayment0000000000001"
    member = await member_login(till, openid=openid)
    coupon = (
        await till.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=member["headers"])
    ).json()
    failed = await scan(
        till,
        await staff_login(till, "cashier1"),
        demo["S001"],
        await payment_code(till, openid, "insufficient_funds"),
        "coupon-failed-1",
        amount=3000,
        memberCode=await member_code(till, member),
        couponId=coupon["id"],
    )
    assert (failed.json()["status"], failed.json()["payableFen"]) == ("failed", 2000)
    assert [c["id"] for c in await coupons_of(till, member)] == [coupon["id"]]


async def test_one_coupon_on_two_tills_at_once_is_used_by_one_order(till, demo):
    made = await template(till, minSpendFen=0)
    claim_campaign = await campaign(till, made["id"], "claim")
    openid = "oTwoTillsOneCoupon00000001"
    member = await member_login(till, openid=openid)
    coupon = (
        await till.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=member["headers"])
    ).json()
    # Each till scans its own code of the member (the previous step's code is another valid one).
    secret = Settings.from_env().secret_key
    codes = [await member_code(till, member)]
    codes.append(MemberCodes(secret).code_for(member["member"]["id"], now=time.time() - 30)[0])
    cashier1 = await staff_login(till, "cashier1")
    auth_codes = [await payment_code(till, openid) for _ in range(2)]
    answers = await asyncio.gather(
        *(
            scan(
                till,
                cashier1,
                demo["S001"],
                auth_codes[i],
                f"two-tills-{i}",
                amount=3000,
                memberCode=codes[i],
                couponId=coupon["id"],
                tillId=f"till-{i}",
            )
            for i in range(2)
        )
    )
    statuses = sorted((a.status_code, a.json().get("code") or a.json()["status"]) for a in answers)
    assert statuses == [(201, "paid"), (422, "coupons.not_usable")], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 422)
    assert refused.json()["details"]["reason"] == "used"
    paid = next(a for a in answers if a.status_code == 201).json()
    row = await Coupon.select(Coupon.status, Coupon.order).where(Coupon.id == coupon["id"]).first()
    assert (row["status"], row["order"]) == ("used", paid["id"])
    assert await Order.count().where(Order.coupon_id == coupon["id"]) == 1


async def test_store_code_mall_and_group_buy_orders_take_coupons(till, demo):
    hq = await staff_login(till, "hq")
    stock = await range_at_stores(till, demo)
    durian_only = await template(till, hq, title="榴莲券", kind="percent", valueFen=None, percentOff=20,
                                 maxDiscountFen=5000, minSpendFen=0, productIds=[stock["product"]["id"]])  # fmt: skip
    anything = await template(till, hq, title="通用券", valueFen=500, minSpendFen=1000, perMemberLimit=5)
    claims = [await campaign(till, made["id"], "claim", hq) for made in (durian_only, anything)]
    buyer = await shopper(till, "CouponBuyer")

    async def claim(index: int) -> int:
        answer = await till.post(f"/api/v1/coupon-campaigns/{claims[index]['id']}/claims", headers=buyer["headers"])
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    # The durian's coupon is not for a payment without products.
    at_store = await till.post(
        f"/api/v1/stores/{demo['S001']}/payments",
        headers=buyer["headers"],
        json={"amountFen": 50_000, "couponId": (durian_coupon := await claim(0))},
    )
    assert (at_store.status_code, at_store.json()["details"]["reason"]) == (422, "products")
    # Store code: 5 yuan off 20.
    paid_here = await till.post(
        f"/api/v1/stores/{demo['S001']}/payments",
        headers=buyer["headers"],
        json={"amountFen": 2000, "couponId": await claim(1)},
    )
    assert paid_here.status_code == 201, paid_here.text
    assert (paid_here.json()["payableFen"], paid_here.json()["amountFen"]) == (1500, 2000)
    # The mall: 20% off the durian, capped at 50 yuan; a percent coupon for the durian alone is not for the
    # till (no products there) — and the order cancelled unpaid gives it back.
    placed = await place(till, buyer, demo["S001"], [(stock["small"], 2)], "coupon-mall-1", couponId=durian_coupon)
    assert placed.status_code == 201, placed.text
    order = placed.json()["order"]
    assert (order["amountFen"], order["couponDiscountFen"], order["payableFen"]) == (39800, 5000, 34800)
    cancel = await till.post(f"/api/v1/me/mall-orders/{order['id']}/cancel", headers=buyer["headers"])
    assert cancel.status_code == 200, cancel.text
    assert durian_coupon in [c["id"] for c in await coupons_of(till, buyer)]
    placed = await place(till, buyer, demo["S001"], [(stock["small"], 1)], "coupon-mall-2", couponId=durian_coupon)
    order = placed.json()["order"]
    assert (order["couponDiscountFen"], order["payableFen"]) == (19900 * 20 // 100, 19900 - 3980)
    await confirm(till, order["outTradeNo"])
    shown = (await till.get(f"/api/v1/me/orders/{order['id']}", headers=buyer["headers"])).json()
    assert (shown["paidFen"], shown["couponId"], shown["pointsEarned"]) == (15920, durian_coupon, 15920 * 2 // 100)
    # A group-buy seat.
    group_buy = await till.post(
        f"{ADMIN}/groupbuy/campaigns",
        headers=hq,
        json={
            "title": "榴莲团",
            "productName": "猫山王榴莲",
            "priceFen": 9900,
            "originalPriceFen": 19900,
            "groupSize": 2,
            "groupTtlMinutes": 60,
            "stock": 10,
            "perMemberLimit": 2,
            "pickupStoreIds": [demo["S001"]],
            "pickupDate": (utcnow() + timedelta(days=3)).date().isoformat(),
            "startsAt": (utcnow() - timedelta(minutes=1)).isoformat(),
            "endsAt": (utcnow() + timedelta(days=2)).isoformat(),
        },
    )
    assert group_buy.status_code == 201, group_buy.text
    seat = await till.post(
        f"/api/v1/groupbuy/campaigns/{group_buy.json()['id']}/groups",
        headers=buyer["headers"],
        json={"pickupStoreId": demo["S001"], "couponId": await claim(1)},
    )
    assert seat.status_code == 201, seat.text
    seat_order = (await till.get(f"/api/v1/me/orders/{seat.json()['order']['id']}", headers=buyer["headers"])).json()
    assert (seat_order["couponDiscountFen"], seat_order["payableFen"]) == (500, 9400)
