"""A paid membership (心享会员) bought as an order of kind `membership`: its period starts or extends once per payment,
gives member prices in the mall, the plan's points multiplier and monthly coupons, and a refund within its terms
takes it back."""

import asyncio
from datetime import datetime, timedelta

import pytest

from backend.core.clock import utcnow
from backend.coupons.tables import Coupon
from backend.members.service import merge_members
from backend.members.tables import MergeReason
from backend.membership.tables import PaidMembership
from backend.orders.tables import Order
from backend.payments import service as payments
from backend.payments.policy import PaymentPolicy
from backend.payments.tables import PaymentTrade
from backend.plans import service as plans
from backend.plans.service import next_coupon_day
from backend.plans.tables import MembershipPurchase
from backend.sandbox import service as sandbox
from backend.sandbox.keys import load_sandbox_keys
from backend.sandbox.notify import SandboxNotifier
from backend.sweeper import sweep_once
from tests.cashier.test_till_checkout import payment_code, scan
from tests.conftest import member_login, staff_login
from tests.coupons.helpers import coupons_of, template
from tests.coupons.test_coupons_on_orders import member_code, till  # noqa: F401 (the fixture)
from tests.mall.helpers import confirm, place, range_at_stores
from tests.payments.test_notifications import post, sealed

PLANS = "/api/v1/admin/membership-plans"
MINE = "/api/v1/me/memberships"


async def make_plan(client, **terms) -> dict:
    monthly = await template(client, title="心享月券", valueFen=500, minSpendFen=0, validDays=31)
    body = {
        "code": "XINXIANG",
        "title": "心享会员 月卡",
        "priceFen": 1000,
        "days": 90,
        "pointsMultiplierPercent": 200,
        "memberPrice": True,
        "monthlyCouponTemplateIds": [monthly["id"]],
        **terms,
    }
    response = await client.post(PLANS, headers=await staff_login(client, "hq"), json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def buy(client, who: dict, plan_id: int, key: str, store_id: int) -> dict:
    response = await client.post(
        MINE, headers=who["headers"], json={"planId": plan_id, "idempotencyKey": key, "storeId": store_id}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def paid(client, who: dict) -> dict | None:
    return (await client.get("/api/v1/me/membership", headers=who["headers"])).json()["paid"]


async def test_a_shopper_buys_the_plan_and_has_member_prices_the_multiplier_and_monthly_coupons(
    till,  # noqa: F811
    demo,
    sandbox_provider,
    settings,
):
    plan = await make_plan(till)
    on_sale = (await till.get("/api/v1/membership-plans")).json()["items"]
    assert [(p["id"], p["priceFen"], p["days"], p["memberPrice"]) for p in on_sale] == [(plan["id"], 1000, 90, True)]
    openid = "oPaidMember000000000000001"
    shopper = await member_login(till, openid=openid)
    stock = await range_at_stores(till, demo)

    # Before: the HQ price.
    before = await place(till, shopper, demo["S001"], [(stock["small"], 1)], "before-plan-1")
    assert before.json()["order"]["lines"][0]["unitPriceFen"] == 19900

    bought = await buy(till, shopper, plan["id"], "buy-plan-0001", demo["S001"])
    order = bought["order"]
    assert (order["kind"], order["status"], order["payableFen"], bought["status"]) == (
        "membership",
        "paying",
        1000,
        "pending_payment",
    )
    assert bought["payParams"]["package"].startswith("prepay_id=")
    assert await paid(till, shopper) is None
    await confirm(till, order["outTradeNo"])
    period = await paid(till, shopper)
    active_until = datetime.fromisoformat(period["activeUntil"])
    assert period["planId"] == plan["id"]
    assert abs(active_until - (utcnow() + timedelta(days=90))) < timedelta(minutes=1)
    me = (await till.get("/api/v1/me", headers=shopper["headers"])).json()
    assert datetime.fromisoformat(me["paidMemberUntil"]) == active_until
    (welcome,) = await coupons_of(till, shopper)  # the plan's coupon, at purchase
    assert (welcome["title"], welcome["valueFen"]) == ("心享月券", 500)
    shown = (await till.get(f"{MINE}/{order['id']}", headers=shopper["headers"])).json()
    assert (shown["status"], shown["order"]["status"], shown["order"]["pointsMultiplierPercent"]) == (
        "active",
        "paid",
        200,
    )

    # Member prices in the mall now, shown on the order.
    mall = await place(till, shopper, demo["S001"], [(stock["small"], 2), (stock["large"], 1)], "with-plan-1")
    body = mall.json()["order"]
    assert [line["unitPriceFen"] for line in body["lines"]] == [17900, 36900]
    assert (body["amountFen"], body["memberPriceSavedFen"], body["discountFen"]) == (2 * 17900 + 36900, 4000, 0)

    # The plan's multiplier at the till: 30 yuan at 2 points a yuan, doubled.
    cashier1 = await staff_login(till, "cashier1")
    checkout = await scan(
        till,
        cashier1,
        demo["S001"],
        await payment_code(till, openid),
        "plan-till-0001",
        amount=3000,
        memberCode=await member_code(till, shopper),
    )
    assert (checkout.json()["pointsEarned"], checkout.json()["pointsMultiplierPercent"]) == (120, 200)

    # The month turns: the sweeper issues the month's coupon once, however often it runs.
    policy = PaymentPolicy.from_settings(settings)
    row = await PaidMembership.select().first()
    assert row["coupons_due_at"] == next_coupon_day(row["started_at"], row["coupon_day"])
    await PaidMembership.update({PaidMembership.coupons_due_at: utcnow() - timedelta(seconds=1)}).where(
        PaidMembership.id == row["id"]
    )
    first_sweep = await sweep_once(provider=sandbox_provider, policy=policy)
    assert first_sweep["plan_coupon_rounds"] == 1
    assert (await sweep_once(provider=sandbox_provider, policy=policy))["plan_coupon_rounds"] == 0
    assert [c["title"] for c in await coupons_of(till, shopper)] == ["心享月券", "心享月券"]
    after = await PaidMembership.select().first()
    assert after["months_issued"] == 1 and after["coupons_due_at"] > utcnow()


async def test_buying_again_while_active_extends_from_the_end_and_a_key_replays(client, demo):
    plan = await make_plan(client, days=30)
    shopper = await member_login(client, openid="oPlanAgain0000000000000001")
    first = await buy(client, shopper, plan["id"], "again-plan-01", demo["S001"])
    await confirm(client, first["order"]["outTradeNo"])
    until = datetime.fromisoformat((await paid(client, shopper))["activeUntil"])
    replayed = await client.post(
        MINE, headers=shopper["headers"], json={"planId": plan["id"], "idempotencyKey": "again-plan-01", "storeId": 1}
    )
    assert (replayed.status_code, replayed.json()["order"]["id"]) == (200, first["order"]["id"])
    second = await buy(client, shopper, plan["id"], "again-plan-02", demo["S001"])
    await confirm(client, second["order"]["outTradeNo"])
    assert datetime.fromisoformat((await paid(client, shopper))["activeUntil"]) == until + timedelta(days=30)
    purchase = (await client.get(f"{MINE}/{second['order']['id']}", headers=shopper["headers"])).json()
    assert datetime.fromisoformat(purchase["periodFrom"]) == until
    listed = (await client.get(MINE, headers=shopper["headers"])).json()["items"]
    assert [item["order"]["id"] for item in listed] == [second["order"]["id"], first["order"]["id"]]


async def test_a_purchase_paid_by_notify_and_query_at_once_extends_the_plan_once(
    client, demo, settings, sandbox_provider
):
    plan = await make_plan(client, days=30)
    shopper = await member_login(client, openid="oPlanRace00000000000000001")
    bought = await buy(client, shopper, plan["id"], "race-plan-01", demo["S001"])
    number = bought["order"]["outTradeNo"]
    answer = await client.post(f"/api/v1/sandbox/payments/{number}/confirm", json={"deliverNotification": False})
    assert answer.status_code == 200, answer.text
    notifier = SandboxNotifier(load_sandbox_keys(settings.var_dir, settings.secret_key), url="")
    message = sealed(notifier, await sandbox.find_trade(number))
    trade = await payments.trade_of(bought["order"]["id"])
    await PaymentTrade.update({PaymentTrade.next_query_at: utcnow() - timedelta(seconds=1)}).where(
        PaymentTrade.id == trade.id
    )
    policy = PaymentPolicy.from_settings(settings)
    answers = await asyncio.gather(
        post(client, message),
        payments.advance(trade.id, provider=sandbox_provider, policy=policy),
        post(client, message),
    )
    assert answers[0].status_code == answers[2].status_code == 204
    order = await Order.select(Order.status, Order.paid_at).where(Order.id == bought["order"]["id"]).first()
    period = await PaidMembership.select().first()
    assert order["status"] == "paid"
    assert period["active_until"] == order["paid_at"] + timedelta(days=30)
    assert await PaidMembership.count() == 1 and await Coupon.count() == 1


async def test_two_workers_issue_each_members_monthly_coupons_once(client, demo):
    plan = await make_plan(client)
    shoppers = [await member_login(client, openid=f"oPlanMonthly{i:0>14}") for i in range(5)]
    for i, shopper in enumerate(shoppers):
        bought = await buy(client, shopper, plan["id"], f"monthly-plan-{i}", demo["S001"])
        await confirm(client, bought["order"]["outTradeNo"])
    await PaidMembership.update({PaidMembership.coupons_due_at: utcnow() - timedelta(seconds=1)}).where(
        PaidMembership.id > 0
    )
    rounds = await asyncio.gather(plans.issue_due_coupons(), plans.issue_due_coupons())
    assert sum(rounds) == 5
    for shopper in shoppers:
        assert len(await coupons_of(client, shopper)) == 2  # the purchase's and this month's
    assert await plans.issue_due_coupons() == 0


async def test_a_period_past_its_end_gets_no_more_coupons(client, demo):
    plan = await make_plan(client, days=30)
    shopper = await member_login(client, openid="oPlanLapsed000000000000001")
    bought = await buy(client, shopper, plan["id"], "lapsed-plan-1", demo["S001"])
    await confirm(client, bought["order"]["outTradeNo"])
    past = utcnow() - timedelta(seconds=1)
    await PaidMembership.update(
        {
            PaidMembership.coupons_due_at: past,
            PaidMembership.active_until: past,
            PaidMembership.started_at: past - timedelta(days=30),
        }
    ).where(PaidMembership.id > 0)
    assert await plans.issue_due_coupons() == 0
    assert (await PaidMembership.select().first())["coupons_due_at"] is None
    assert await paid(client, shopper) is None and len(await coupons_of(client, shopper)) == 1


async def test_a_refund_within_seven_days_ends_it_and_withdraws_its_coupons(till, demo):  # noqa: F811
    plan = await make_plan(till)
    shopper = await member_login(till, openid="oPlanRefund000000000000001")
    bought = await buy(till, shopper, plan["id"], "refund-plan-1", demo["S001"])
    await confirm(till, bought["order"]["outTradeNo"])
    assert (await till.get("/api/v1/me/membership", headers=shopper["headers"])).json()["growth"] == 1000
    cancelled = await till.post(f"{MINE}/{bought['order']['id']}/cancel", headers=shopper["headers"])
    assert cancelled.status_code == 200, cancelled.text
    for _ in range(50):
        shown = (await till.get(f"{MINE}/{bought['order']['id']}", headers=shopper["headers"])).json()
        if shown["status"] == "refunded":
            break
        await asyncio.sleep(0.05)
    assert (shown["status"], shown["order"]["status"], shown["order"]["refundedFen"]) == ("refunded", "refunded", 1000)
    assert await paid(till, shopper) is None
    assert await coupons_of(till, shopper) == [] and len(await coupons_of(till, shopper, "expired")) == 1
    mine = (await till.get("/api/v1/me/membership", headers=shopper["headers"])).json()
    assert mine["growth"] == 0
    again = await till.post(f"{MINE}/{bought['order']['id']}/cancel", headers=shopper["headers"])
    assert (again.status_code, again.json()["status"]) == (200, "refunded")


@pytest.mark.parametrize("why", ["member_price_used", "coupon_used", "too_late"])
async def test_a_refund_is_refused_once_a_benefit_was_used_or_seven_days_passed(till, demo, why):  # noqa: F811
    plan = await make_plan(till)
    shopper = await member_login(till, openid="oPlanNoRefund0000000000001")
    stock = await range_at_stores(till, demo)
    bought = await buy(till, shopper, plan["id"], "norefund-plan", demo["S001"])
    await confirm(till, bought["order"]["outTradeNo"])
    if why == "member_price_used":
        mall = await place(till, shopper, demo["S001"], [(stock["small"], 1)], "member-priced-1")
        await confirm(till, mall.json()["order"]["outTradeNo"])
    elif why == "coupon_used":
        (coupon,) = await coupons_of(till, shopper)
        mall = await place(till, shopper, demo["S001"], [(stock["large"], 1)], "couponed-1", couponId=coupon["id"])
        assert mall.status_code == 201, mall.text
    else:
        await Order.update({Order.paid_at: utcnow() - timedelta(days=8)}).where(Order.id == bought["order"]["id"])
    refused = await till.post(f"{MINE}/{bought['order']['id']}/cancel", headers=shopper["headers"])
    assert (refused.status_code, refused.json()["code"], refused.json()["details"]["reason"]) == (
        409,
        "membership.not_refundable",
        why,
    )
    assert await paid(till, shopper) is not None
    assert (await MembershipPurchase.select(MembershipPurchase.status).first())["status"] == "active"


async def test_an_unpaid_purchase_cancelled_is_closed_and_starts_nothing(client, demo):
    plan = await make_plan(client)
    shopper = await member_login(client, openid="oPlanUnpaid000000000000001")
    bought = await buy(client, shopper, plan["id"], "unpaid-plan-1", demo["S001"])
    cancelled = await client.post(f"{MINE}/{bought['order']['id']}/cancel", headers=shopper["headers"])
    assert (cancelled.status_code, cancelled.json()["status"], cancelled.json()["order"]["status"]) == (
        200,
        "cancelled",
        "cancelled",
    )
    assert await paid(client, shopper) is None and await PaidMembership.count() == 0


async def test_bad_plans_and_purchases_are_refused_and_change_nothing(client, demo):
    plan = await make_plan(client)
    hq = await staff_login(client, "hq")
    body = {"code": "OTHER", "title": "x", "priceFen": 100, "days": 30}
    unknown = await client.post(PLANS, headers=hq, json={**body, "monthlyCouponTemplateIds": [999_999]})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "membership.plan_invalid")
    taken = await client.post(PLANS, headers=hq, json={**body, "code": "XINXIANG"})
    assert (taken.status_code, taken.json()["code"]) == (409, "membership.plan_code_taken")
    for bad in ({**body, "priceFen": 0}, {**body, "days": 0}, {**body, "pointsMultiplierPercent": 99}):
        response = await client.post(PLANS, headers=hq, json=bad)
        assert (response.status_code, response.json()["code"]) == (422, "request.invalid"), bad
    cashier = await client.post(PLANS, headers=await staff_login(client, "cashier1"), json=body)
    assert (cashier.status_code, cashier.json()["code"]) == (403, "auth.forbidden")
    assert len((await client.get(PLANS, headers=hq)).json()["items"]) == 1

    shopper = await member_login(client, openid="oPlanBad000000000000000001")
    missing = await client.post(
        MINE, headers=shopper["headers"], json={"planId": 999_999, "idempotencyKey": "bad-plan-1"}
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "membership.plan_not_found")
    no_store = await client.post(
        MINE, headers=shopper["headers"], json={"planId": plan["id"], "idempotencyKey": "bad-plan-2"}
    )
    assert (no_store.status_code, no_store.json()["code"]) == (422, "membership.store_required")
    bought = await buy(client, shopper, plan["id"], "bad-plan-3", demo["S001"])
    second_plan = (await client.post(PLANS, headers=hq, json={**body, "code": "OTHER2"})).json()
    conflict = await client.post(
        MINE,
        headers=shopper["headers"],
        json={"planId": second_plan["id"], "idempotencyKey": "bad-plan-3", "storeId": demo["S001"]},
    )
    assert (conflict.status_code, conflict.json()["code"]) == (409, "membership.idempotency_conflict")
    other = await member_login(client, openid="oPlanOther0000000000000001")
    for path in (f"{MINE}/{bought['order']['id']}", f"{MINE}/{bought['order']['id']}/cancel"):
        call = client.get if not path.endswith("cancel") else client.post
        response = await call(path, headers=other["headers"])
        assert (response.status_code, response.json()["code"]) == (404, "membership.purchase_not_found"), path
    assert await Order.count() == 1 and await MembershipPurchase.count() == 1


async def test_a_merge_adds_growth_and_keeps_the_later_ending_period(client, demo):
    await client.put(
        "/api/v1/admin/tiers",
        headers=await staff_login(client, "hq"),
        json={
            "tiers": [
                {"code": "normal", "name": "普通", "minGrowth": 0},
                {"code": "vip", "name": "VIP", "minGrowth": 1500},
            ]
        },
    )
    short = await make_plan(client, days=30)
    long = (
        await client.post(
            PLANS,
            headers=await staff_login(client, "hq"),
            json={"code": "YEAR", "title": "年卡", "priceFen": 1000, "days": 365},
        )
    ).json()
    survivor = await member_login(client, openid="oPlanSurvivor0000000000001")
    merged = await member_login(client, openid="oPlanMerged000000000000001")
    for who, plan, key in ((survivor, short, "merge-plan-1"), (merged, long, "merge-plan-2")):
        bought = await buy(client, who, plan["id"], key, demo["S001"])
        await confirm(client, bought["order"]["outTradeNo"])
    their_until = (await paid(client, merged))["activeUntil"]
    await merge_members(survivor["member"]["id"], merged["member"]["id"], reason=MergeReason.hq)
    held = (await client.get("/api/v1/me/membership", headers=survivor["headers"])).json()
    assert (held["growth"], held["tier"]["code"]) == (2000, "vip")
    assert (held["paid"]["planId"], held["paid"]["activeUntil"]) == (long["id"], their_until)
    assert await PaidMembership.count() == 1
    assert {row["member"] for row in await MembershipPurchase.select(MembershipPurchase.member)} == {
        survivor["member"]["id"]
    }
