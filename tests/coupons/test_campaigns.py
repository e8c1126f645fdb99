"""Coupon campaigns: claims under races, manual issues to a segment with a value per member (千人千券) and a budget,
referral rewards, and the coupons of a merged member."""

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from backend.core.auth import PrincipalKind, TokenIssuer
from backend.core.clock import utcnow
from backend.core.db import insert_row
from backend.coupons.tables import Coupon, CouponCampaign, CouponIssue, CouponTemplate
from backend.members.service import merge_members
from backend.members.tables import MergeReason
from backend.orders.tables import Order, OrderKind, OrderStatus
from backend.settings import Settings
from tests.conftest import member_login, staff_login
from tests.coupons.helpers import ADMIN, campaign, coupons_of, members, template
from tests.referrals.test_referrals import login_with, pay, share
from tests.referrals.test_referrals import new_campaign as new_referral_campaign
from tests.referrals.test_referrals import openid as referral_openid


@pytest.fixture
async def unlimited(make_client):
    async with make_client(rate_limit_per_minute=0) as client:
        yield client


def headers_of(member_ids: list[int]) -> list[dict[str, str]]:
    settings = Settings.from_env()
    tokens = TokenIssuer(settings.secret_key, member_ttl=600, staff_ttl=600)
    return [{"Authorization": f"Bearer {tokens.issue(PrincipalKind.member, m)}"} for m in member_ids]


async def spent(member_id: int, store_id: int, paid_fen: int, *, days_ago: float = 1, refunded_fen: int = 0) -> None:
    """A paid till order of the member's, `days_ago`."""
    at = utcnow() - timedelta(days=days_ago)
    await insert_row(
        Order,
        kind=OrderKind.till,
        store=store_id,
        member=member_id,
        status=OrderStatus.paid if not refunded_fen else OrderStatus.partially_refunded,
        amount_fen=paid_fen,
        payable_fen=paid_fen,
        paid_fen=paid_fen,
        refunded_fen=refunded_fen,
        out_trade_no=f"T{member_id:08d}{int(at.timestamp() * 1000)}",
        pay_by=at,
        idempotency_key=f"spent-{member_id}-{paid_fen}-{days_ago}",
        created_at=at,
        paid_at=at,
    )


async def test_a_thousand_claims_on_a_total_limit_of_a_hundred_give_exactly_a_hundred(unlimited, demo):
    made = await template(unlimited, totalLimit=100)
    claim_campaign = await campaign(unlimited, made["id"], "claim")
    claimers = headers_of(await members(1000))
    answers = await asyncio.gather(
        *(unlimited.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=h) for h in claimers)
    )
    seen = Counter((a.status_code, a.json().get("code")) for a in answers)
    assert seen == {(201, None): 100, (409, "coupons.sold_out"): 900}, seen
    assert await Coupon.count() == 100
    assert len({row["member"] for row in await Coupon.select(Coupon.member)}) == 100
    assert (await CouponTemplate.select(CouponTemplate.issued_count).first())["issued_count"] == 100
    assert (await CouponCampaign.select(CouponCampaign.issued_count).first())["issued_count"] == 100


async def test_one_member_claiming_at_once_gets_their_limit_and_no_more(unlimited, demo):
    made = await template(unlimited, perMemberLimit=2)
    claim_campaign = await campaign(unlimited, made["id"], "claim")
    (me,) = headers_of(await members(1))
    answers = await asyncio.gather(
        *(unlimited.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=me) for _ in range(8))
    )
    assert sorted(a.status_code for a in answers) == [201, 201] + [409] * 6, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"coupons.limit_reached"}
    assert await Coupon.count() == 2
    listed = await unlimited.get("/api/v1/coupon-campaigns", headers=me)
    assert [c["id"] for c in listed.json()["items"]] == [claim_campaign["id"]]


async def test_a_claim_outside_its_campaign_or_by_another_trigger_is_refused(client, demo):
    made = await template(client)
    hq = await staff_login(client, "hq")
    later = await client.post(
        f"{ADMIN}/coupon-campaigns",
        headers=hq,
        json={
            "templateId": made["id"],
            "trigger": "claim",
            "startsAt": (utcnow() + timedelta(days=1)).isoformat(),
            "endsAt": (utcnow() + timedelta(days=2)).isoformat(),
        },
    )
    manual = await campaign(client, made["id"], "manual")
    member = await member_login(client, openid="oClaimTooSoon0000000000001")
    early = await client.post(f"/api/v1/coupon-campaigns/{later.json()['id']}/claims", headers=member["headers"])
    assert (early.status_code, early.json()["code"]) == (409, "coupons.campaign_not_open")
    wrong = await client.post(f"/api/v1/coupon-campaigns/{manual['id']}/claims", headers=member["headers"])
    assert (wrong.status_code, wrong.json()["code"]) == (409, "coupons.wrong_trigger")
    missing = await client.post("/api/v1/coupon-campaigns/999999/claims", headers=member["headers"])
    assert (missing.status_code, missing.json()["code"]) == (404, "coupons.campaign_not_found")
    assert (await client.post(f"/api/v1/coupon-campaigns/{manual['id']}/claims")).status_code == 401
    cashier = await staff_login(client, "cashier1")
    assert (await client.post(f"/api/v1/coupon-campaigns/{manual['id']}/claims", headers=cashier)).status_code == 403
    assert await Coupon.count() == 0
    for bad in (
        {"trigger": "claim", "budgetFen": 1000, "templateId": 999_999},
        {"trigger": "claim", "startsAt": (utcnow() + timedelta(days=3)).isoformat()},
        {"trigger": "claim", "rewardTo": "referrer"},
        {"trigger": "manual", "segmentId": 999_999},
        {"trigger": "manual", "valueRule": {"by": "tier"}},
        {"trigger": "manual", "valueRule": {"by": "spend"}},
    ):
        body = {
            "templateId": made["id"],
            "startsAt": utcnow().isoformat(),
            "endsAt": (utcnow() + timedelta(days=2)).isoformat(),
            **bad,
        }
        response = await client.post(f"{ADMIN}/coupon-campaigns", headers=hq, json=body)
        assert (response.status_code, response.json()["code"]) == (422, "coupons.campaign_invalid"), bad
    assert await CouponCampaign.count() == 2


async def test_a_manual_issue_values_each_member_by_spend_and_stops_at_its_budget(client, demo):
    hq = await staff_login(client, "hq")
    light, heavy, idle, *others = await members(8, demo["S001"])
    await spent(light, demo["S001"], 5_000)  # 50 yuan in 90 days: the 5-yuan band
    await spent(heavy, demo["S001"], 80_000)
    await spent(heavy, demo["S002"], 40_000, days_ago=10)  # 1,200 yuan: the 20-yuan band
    await spent(idle, demo["S001"], 500_000, days_ago=200)  # long ago: spent nothing in the window
    tag = await client.post(f"{ADMIN}/tags", headers=hq, json={"name": "千人千券"})
    for member_id in (light, heavy, idle, *others[:3]):
        tagged = await client.post(f"{ADMIN}/members/{member_id}/tags", headers=hq, json={"tagIds": [tag.json()["id"]]})
        assert tagged.status_code in (200, 201), tagged.text
    segment = await client.post(
        f"{ADMIN}/segments", headers=hq, json={"name": "券", "rules": {"tagIds": [tag.json()["id"]]}}
    )
    assert segment.status_code == 201, segment.text
    made = await template(client, hq, valueFen=500, minSpendFen=0)
    rule = {
        "by": "spend",
        "windowDays": 90,
        "spendBands": [
            {"minSpendFen": 0, "valueFen": 500},
            {"minSpendFen": 10_000, "valueFen": 1000},
            {"minSpendFen": 100_000, "valueFen": 2000},
        ],
    }
    # Six members in the segment, by id: 5 + 20 + 5 + 5 = 35 yuan, and the next 5 would pass the budget of 38.
    manual = await campaign(
        client, made["id"], "manual", hq, segmentId=segment.json()["id"], valueRule=rule, budgetFen=3800
    )
    first = await client.post(
        f"{ADMIN}/coupon-campaigns/{manual['id']}/issues", headers=hq, json={"idempotencyKey": "issue-2026-12-a"}
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["status"], body["issued"], body["issuedFen"], body["budgetLeftFen"]) == ("budget_spent", 4, 3500, 300)
    values = {row["member"]: row["value_fen"] for row in await Coupon.select(Coupon.member, Coupon.value_fen)}
    assert (values[light], values[heavy], values[idle]) == (500, 2000, 500)
    assert len(values) == 4 and others[1] not in values
    again = await client.post(
        f"{ADMIN}/coupon-campaigns/{manual['id']}/issues", headers=hq, json={"idempotencyKey": "issue-2026-12-a"}
    )
    assert again.status_code == 200 and again.json() == body
    assert await Coupon.count() == 4
    progress = await client.get(f"{ADMIN}/coupon-campaigns/{manual['id']}/issues/{body['id']}", headers=hq)
    assert progress.json() == body
    shown = await client.get(f"{ADMIN}/coupon-campaigns/{manual['id']}", headers=hq)
    assert (shown.json()["budgetUsedFen"], shown.json()["issuedCount"]) == (3500, 4)


async def test_one_issue_key_run_twice_at_once_issues_once(client, demo, monkeypatch):
    from backend.coupons import service

    monkeypatch.setattr(service, "ISSUE_BATCH", 7)  # several batches, so that the two runs interleave
    hq = await staff_login(client, "hq")
    everyone = await members(40)
    made = await template(client, hq, minSpendFen=0, perMemberLimit=3)  # a second run would have room to issue
    manual = await campaign(client, made["id"], "manual", hq)
    path = f"{ADMIN}/coupon-campaigns/{manual['id']}/issues"
    answers = await asyncio.gather(
        *(client.post(path, headers=hq, json={"idempotencyKey": "issue-twice-at-once"}) for _ in range(2))
    )
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    assert {(a.json()["issued"], a.json()["status"]) for a in answers} == {(40, "done")}
    assert await Coupon.count() == 40 and await CouponIssue.count() == 1
    assert {row["member"] for row in await Coupon.select(Coupon.member)} == set(everyone)
    # A second key is a second issue: each member's second coupon of the template, and no third run of either.
    other = await client.post(path, headers=hq, json={"idempotencyKey": "issue-twice-second"})
    assert (other.json()["issued"], other.json()["skipped"]) == (40, 0)
    assert await Coupon.count() == 80
    slots = sorted((row["member"], row["slot"]) for row in await Coupon.select(Coupon.member, Coupon.slot))
    assert slots == sorted((member, slot) for member in everyone for slot in (1, 2))


async def test_a_referral_that_qualifies_gives_the_referrer_and_referee_their_coupons(client, demo):
    made = await template(client, minSpendFen=0, title="邀请有礼", perMemberLimit=3)
    await campaign(client, made["id"], "referral_reward", rewardTo="both")
    referee_only = await template(client, minSpendFen=0, title="好友券")
    await campaign(client, referee_only["id"], "referral_reward", rewardTo="referee")
    sharer = await member_login(client, openid=referral_openid(1))
    link = await share(client, sharer, campaignId=(await new_referral_campaign(client))["id"])
    friend = await login_with(client, link["scene"], openid=referral_openid(2))
    assert await coupons_of(client, friend) == []  # bound, not qualified: nothing yet
    await pay(client, demo, referral_openid(2), "coupon-referral-1")
    assert [c["title"] for c in await coupons_of(client, sharer)] == ["邀请有礼"]
    assert sorted(c["title"] for c in await coupons_of(client, friend)) == ["好友券", "邀请有礼"]
    await pay(client, demo, referral_openid(2), "coupon-referral-2")  # a second order qualifies nothing
    assert await Coupon.count() == 3


async def test_a_merged_members_coupons_become_the_survivors(client, demo):
    made = await template(client, minSpendFen=0, perMemberLimit=5)
    claim_campaign = await campaign(client, made["id"], "claim")
    older = await members(2)
    survivor, merged = headers_of(older)
    for who, times in ((survivor, 1), (merged, 2)):
        for _ in range(times):
            answer = await client.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=who)
            assert answer.status_code == 201, answer.text
    await merge_members(older[0], older[1], reason=MergeReason.phone)
    rows = await Coupon.select(Coupon.member, Coupon.slot).order_by(Coupon.slot)
    assert [(row["member"], row["slot"]) for row in rows] == [(older[0], 1), (older[0], 2), (older[0], 3)]
    again = await client.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=survivor)
    assert again.status_code == 201, again.text  # the fourth slot: the survivor's slots follow on from 1..3
    assert sorted(row["slot"] for row in await Coupon.select(Coupon.slot)) == [1, 2, 3, 4]


async def test_a_campaign_for_a_segment_is_for_its_members_alone(client, demo):
    hq = await staff_login(client, "hq")
    inside, outside = await members(2)
    tag = (await client.post(f"{ADMIN}/tags", headers=hq, json={"name": "会员日"})).json()
    assert (
        await client.post(f"{ADMIN}/members/{inside}/tags", headers=hq, json={"tagIds": [tag["id"]]})
    ).status_code in (200, 201)
    segment = (
        await client.post(f"{ADMIN}/segments", headers=hq, json={"name": "会员日", "rules": {"tagIds": [tag["id"]]}})
    ).json()
    made = await template(client, hq, minSpendFen=0)
    claim_campaign = await campaign(client, made["id"], "claim", hq, segmentId=segment["id"])
    inside_headers, outside_headers = headers_of([inside, outside])
    assert [
        c["id"] for c in (await client.get("/api/v1/coupon-campaigns", headers=outside_headers)).json()["items"]
    ] == []
    refused = await client.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=outside_headers)
    assert (refused.status_code, refused.json()["code"]) == (404, "coupons.campaign_not_found")
    listed = await client.get("/api/v1/coupon-campaigns", headers=inside_headers)
    assert [c["id"] for c in listed.json()["items"]] == [claim_campaign["id"]]
    claimed = await client.post(f"/api/v1/coupon-campaigns/{claim_campaign['id']}/claims", headers=inside_headers)
    assert claimed.status_code == 201, claimed.text
    assert [row["member"] for row in await Coupon.select(Coupon.member)] == [inside]
    # A campaign may not outlast its template's fixed window: its coupons would be expired already.
    windowed = await template(
        client,
        hq,
        validDays=None,
        validFrom=utcnow().isoformat(),
        validUntil=(utcnow() + timedelta(days=1)).isoformat(),
    )
    late = await client.post(
        f"{ADMIN}/coupon-campaigns",
        headers=hq,
        json={"templateId": windowed["id"], "trigger": "claim", "startsAt": utcnow().isoformat(),
              "endsAt": (utcnow() + timedelta(days=2)).isoformat()},
    )  # fmt: skip
    assert (late.status_code, late.json()["code"]) == (422, "coupons.campaign_invalid")
    assert "endsAt" in late.json()["details"]
