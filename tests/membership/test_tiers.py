"""Tiers by growth: the fen a member paid on any order, less refunds, kept with the tier it reaches in the payment's
and the refund's own transaction; the tier's multiplier and discount on the orders that follow."""

import asyncio
import time

import pytest

from backend.core.db import insert_row
from backend.coupons.tables import Coupon
from backend.members.code import STEP_SECONDS, MemberCodes
from backend.members.tables import EnrolmentChannel, Member
from backend.orders.tables import Order
from backend.settings import Settings
from tests.cashier.test_refunds import refund
from tests.cashier.test_till_checkout import payment_code, scan
from tests.conftest import member_login, staff_login
from tests.coupons.helpers import ADMIN, campaign, template, window
from tests.coupons.test_coupons_on_orders import member_code, till  # noqa: F401 (the fixture)
from tests.mall.helpers import confirm

TIERS = "/api/v1/admin/tiers"
LADDER = [
    {"code": "normal", "name": "普通会员", "minGrowth": 0},
    {"code": "silver", "name": "银卡", "minGrowth": 10_000, "pointsMultiplierPercent": 150, "discountPercent": 5},
    {"code": "gold", "name": "金卡", "minGrowth": 50_000, "pointsMultiplierPercent": 200, "discountPercent": 10},
]


async def set_ladder(client, tiers=LADDER) -> dict:
    response = await client.put(TIERS, headers=await staff_login(client, "hq"), json={"tiers": tiers})
    assert response.status_code == 200, response.text
    return response.json()


def previous_code(who: dict) -> str:
    """The member's code of the step before: another valid one (each checkout takes its code once)."""
    secret = Settings.from_env().secret_key
    return MemberCodes(secret).code_for(who["member"]["id"], now=time.time() - STEP_SECONDS)[0]


async def membership(client, who: dict) -> dict:
    response = await client.get("/api/v1/me/membership", headers=who["headers"])
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_shopper_pays_into_the_second_tier_earns_and_saves_by_it_and_a_refund_takes_it_back(till, demo):  # noqa: F811
    await set_ladder(till)
    cashier1 = await staff_login(till, "cashier1")
    openid = "oTierClimber00000000000001"
    first = await scan(till, cashier1, demo["S001"], await payment_code(till, openid), "tier-0001", amount=6000)
    assert (first.json()["status"], first.json()["pointsEarned"], first.json()["pointsMultiplierPercent"]) == (
        "paid",
        120,
        100,
    )
    member = await member_login(till, openid=openid)
    mine = await membership(till, member)
    assert mine["tier"] == {
        "code": "normal",
        "name": "普通会员",
        "growth": 6000,
        "nextTierGrowth": 10_000,
        "pointsMultiplierPercent": 100,
        "discountPercent": 0,
    }
    assert (mine["growth"], mine["paid"]) == (6000, None)

    # The payment that reaches silver earns at silver's multiplier: 50 yuan at 2 points a yuan, times 1.5.
    second = await scan(
        till,
        cashier1,
        demo["S001"],
        await payment_code(till, openid),
        "tier-0002",
        amount=5000,
        memberCode=await member_code(till, member),
    )
    body = second.json()
    assert (body["tierDiscountFen"], body["paidFen"], body["pointsEarned"], body["pointsMultiplierPercent"]) == (
        0,
        5000,
        150,
        150,
    )
    me = (await till.get("/api/v1/me", headers=member["headers"])).json()
    assert me["tier"] == {"code": "silver", "name": "银卡", "growth": 11_000, "nextTierGrowth": 50_000}
    assert me["paidMemberUntil"] is None

    # Silver takes 5% off the next till payment, before anything else; points on what was paid.
    third = await scan(
        till,
        cashier1,
        demo["S001"],
        await payment_code(till, openid),
        "tier-0003",
        amount=2000,
        memberCode=previous_code(member),
    )
    body = third.json()
    assert third.status_code == 201, third.text
    assert (body["tierDiscountFen"], body["discountFen"], body["payableFen"], body["paidFen"]) == (100, 100, 1900, 1900)
    assert (body["pointsEarned"], body["pointsMultiplierPercent"]) == (57, 150)
    assert (await membership(till, member))["growth"] == 12_900

    # Refunding the second order in full takes its 50 yuan off: back under silver.
    done = await refund(till, cashier1, second.json()["id"], 5000, "tier-refund-1")
    assert done.json()["status"] == "succeeded", done.text
    mine = await membership(till, member)
    assert (mine["growth"], mine["tier"]["code"], mine["tier"]["nextTierGrowth"]) == (7900, "normal", 10_000)


async def test_concurrent_payments_crossing_a_threshold_leave_the_summed_growth_and_its_tier(client, demo):
    """Twenty store-code payments of 10 yuan confirmed at once: growth 200 yuan, silver; the payments that left the
    member at 100 yuan or more (the 10th to the 20th) earned at silver's multiplier, the nine before at none."""
    await set_ladder(client)
    member = await member_login(client, openid="oTierRacer0000000000000001")
    placed = []
    for _ in range(20):
        response = await client.post(
            f"/api/v1/stores/{demo['S001']}/payments", headers=member["headers"], json={"amountFen": 1000}
        )
        assert response.status_code == 201, response.text
        placed.append(response.json())
    await asyncio.gather(*(confirm(client, order["outTradeNo"]) for order in placed))
    mine = await membership(client, member)
    assert (mine["growth"], mine["tier"]["code"]) == (20_000, "silver")
    member_id = (await client.get("/api/v1/me", headers=member["headers"])).json()["id"]
    rows = await Order.select(Order.points_multiplier_percent, Order.points_earned).where(Order.member == member_id)
    assert sorted(row["points_multiplier_percent"] for row in rows) == [100] * 9 + [150] * 11
    assert sum(row["points_earned"] for row in rows) == 9 * 20 + 11 * 30


async def test_a_new_ladder_retiers_every_member_in_one_statement(client, demo):
    grown = [0, 9_999, 10_000, 49_999, 50_000, 1_000_000]
    ids = [await insert_row(Member, enrolled_via=EnrolmentChannel.miniprogram, growth_fen=growth) for growth in grown]

    async def tiers() -> list[str]:
        rows = await Member.select(Member.id, Member.tier_code).where(Member.id.is_in(ids)).order_by(Member.id)
        return [row["tier_code"] for row in rows]

    first = await set_ladder(client)
    assert first["membersRetiered"] == 6
    assert [tier["code"] for tier in first["tiers"]] == ["normal", "silver", "gold"]
    assert await tiers() == ["normal", "normal", "silver", "silver", "gold", "gold"]
    assert (await set_ladder(client))["membersRetiered"] == 0  # the same ladder again changes nobody

    # Silver moved up to 20,000: two members go down to normal.
    moved = [LADDER[0], {**LADDER[1], "minGrowth": 20_000}, LADDER[2]]
    assert (await set_ladder(client, moved))["membersRetiered"] == 1
    assert await tiers() == ["normal", "normal", "normal", "silver", "gold", "gold"]
    assert (await set_ladder(client, []))["membersRetiered"] == 6  # tiers off
    assert await tiers() == [""] * 6
    shown = await client.get(TIERS, headers=await staff_login(client, "hq"))
    assert shown.json()["tiers"] == []


@pytest.mark.parametrize(
    ("tiers", "status", "code"),
    [
        ([{**LADDER[1]}], 422, "tiers.invalid"),  # nothing starts at 0
        ([LADDER[0], {**LADDER[1], "code": "normal"}], 422, "tiers.invalid"),
        ([LADDER[0], {**LADDER[1], "minGrowth": 0}], 422, "tiers.invalid"),
        ([{**LADDER[0], "pointsMultiplierPercent": 50}], 422, "request.invalid"),
        ([{**LADDER[0], "discountPercent": 60}], 422, "request.invalid"),
        ([{**LADDER[0], "code": "金卡 gold"}], 422, "request.invalid"),
        ([{**LADDER[0], "minGrowth": -1}], 422, "request.invalid"),
    ],
    ids=["no-zero", "code-twice", "growth-twice", "multiplier-below-100", "discount-over-50", "bad-code", "negative"],
)
async def test_a_bad_ladder_is_refused_and_the_old_one_stays(client, demo, tiers, status, code):
    await set_ladder(client)
    hq = await staff_login(client, "hq")
    response = await client.put(TIERS, headers=hq, json={"tiers": tiers})
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert [tier["code"] for tier in (await client.get(TIERS, headers=hq)).json()["tiers"]] == [
        "normal",
        "silver",
        "gold",
    ]


async def test_only_hq_sets_the_ladder(client, demo):
    for who in ("manager1", "cashier1"):
        response = await client.put(TIERS, headers=await staff_login(client, who), json={"tiers": LADDER})
        assert (response.status_code, response.json()["code"]) == (403, "auth.forbidden"), who
    member = await member_login(client, openid="oTierNosy00000000000000001")
    refused = await client.put(TIERS, headers=member["headers"], json={"tiers": LADDER})
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")  # a member is no staff
    assert (await client.put(TIERS, json={"tiers": LADDER})).status_code == 401
    assert (await client.get("/api/v1/me/membership")).status_code == 401
    assert (await client.get(TIERS, headers=await staff_login(client, "hq"))).json()["tiers"] == []  # nothing set


async def test_segments_and_coupon_values_follow_the_tier_held(client, demo):
    """A segment of silver and gold members counts those tiers alone; a campaign valued by tier gives each its band
    (千人千券), normal members none; a tier not on the ladder is refused in either."""
    grown = {"n1": 0, "n2": 9_999, "s1": 10_000, "s2": 20_000, "g1": 50_000}
    ids = {
        name: await insert_row(Member, enrolled_via=EnrolmentChannel.miniprogram, growth_fen=growth)
        for name, growth in grown.items()
    }
    await set_ladder(client)
    hq = await staff_login(client, "hq")
    segment = await client.post(
        f"{ADMIN}/segments", headers=hq, json={"name": "银卡以上", "rules": {"tierCodes": ["silver", "gold"]}}
    )
    assert segment.status_code == 201, segment.text
    listed = (await client.get(f"{ADMIN}/segments/{segment.json()['id']}/members", headers=hq)).json()
    assert (listed["count"], sorted(item["memberId"] for item in listed["items"])) == (
        3,
        sorted(ids[name] for name in ("s1", "s2", "g1")),
    )
    unknown = await client.post(
        f"{ADMIN}/segments", headers=hq, json={"name": "x", "rules": {"tierCodes": ["silver", "platinum"]}}
    )
    assert (unknown.status_code, unknown.json()["code"], unknown.json()["details"]) == (
        422,
        "segments.unknown_tier",
        {"tierCodes": ["platinum"]},
    )

    made = await template(client, hq, title="会员日券", valueFen=500, minSpendFen=0)
    bands = [{"tierCode": "silver", "valueFen": 1000}, {"tierCode": "gold", "valueFen": 3000}]
    bad = await client.post(
        f"{ADMIN}/coupon-campaigns",
        headers=hq,
        json={
            "templateId": made["id"],
            "trigger": "manual",
            "valueRule": {"by": "tier", "tierBands": [*bands, {"tierCode": "platinum", "valueFen": 9000}]},
            **window(),
        },
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "coupons.campaign_invalid")
    assert "platinum" in bad.json()["details"]["valueRule.tierBands"]
    manual = await campaign(client, made["id"], "manual", hq, valueRule={"by": "tier", "tierBands": bands})
    issued = await client.post(
        f"{ADMIN}/coupon-campaigns/{manual['id']}/issues", headers=hq, json={"idempotencyKey": "by-tier-0001"}
    )
    assert issued.status_code in (200, 201), issued.text
    values = {row["member"]: row["value_fen"] for row in await Coupon.select(Coupon.member, Coupon.value_fen)}
    assert values == {ids["s1"]: 1000, ids["s2"]: 1000, ids["g1"]: 3000}
