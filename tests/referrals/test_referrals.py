"""Share links, attribution and rewards: only real referrals are rewarded, once."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from backend.members.tables import Member
from backend.points import service as points
from backend.points.tables import PointsEntry
from backend.referrals import service as referrals
from backend.referrals.tables import Referral, ReferralReward, ShareLink
from tests.cashier.test_refunds import refund
from tests.cashier.test_till_checkout import FAST, payment_code, scan
from tests.conftest import member_login, staff_login

ADMIN = "/api/v1/admin/referral-campaigns"


def campaign_body(**changes) -> dict:
    now = datetime.now(UTC)
    return {
        "title": "拉新有礼 邀请好友得积分",
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now + timedelta(days=30)).isoformat(),
        "referrerPoints": 200,
        "refereePoints": 100,
        "holdingPeriodDays": 7,
        "dailyCapPerReferrer": 5,
        **changes,
    }


@pytest.fixture
async def till(make_client):
    async with make_client(**FAST) as client:
        yield client


async def new_campaign(client, **changes) -> dict:
    response = await client.post(ADMIN, headers=await staff_login(client, "hq"), json=campaign_body(**changes))
    assert response.status_code == 201, response.text
    return response.json()


async def share(client, member, **target) -> dict:
    response = await client.post("/api/v1/me/share-links", headers=member["headers"], json=target)
    assert response.status_code == 200, response.text
    return response.json()


async def login_with(client, scene: str | None, **wechat) -> dict:
    code = (await client.post("/api/v1/sandbox/wechat/login-codes", json=wechat)).json()["code"]
    body = {"code": code} | ({"scene": scene} if scene else {})
    response = await client.post("/api/v1/auth/miniprogram/login", json=body)
    assert response.status_code == 200, response.text
    login = response.json()
    login["headers"] = {"Authorization": f"Bearer {login['accessToken']}"}
    return login


async def pay(client, demo, openid: str, key: str, amount: int = 5000, cashier=None, **extra) -> dict:
    response = await scan(
        client,
        cashier or await staff_login(client, "cashier1"),
        demo["S001"],
        await payment_code(client, openid),
        key,
        amount=amount,
        **extra,
    )
    assert response.status_code == 201 and response.json()["status"] == "paid", response.text
    return response.json()


def openid(n: int) -> str:
    return f"oReferral{n:018d}"


async def rewards() -> list[dict]:
    return await ReferralReward.select(
        ReferralReward.member, ReferralReward.role, ReferralReward.status, ReferralReward.points
    ).order_by(ReferralReward.id)


async def test_a_share_link_is_one_per_member_and_target_and_resolves_without_ids(client, demo):
    campaign = await new_campaign(client)
    sharer = await member_login(client, openid=openid(1))
    first, again = (
        await share(client, sharer, campaignId=campaign["id"]),
        await share(client, sharer, campaignId=campaign["id"]),
    )
    assert first == again and first["url"].endswith(first["scene"])
    assert len(first["scene"]) <= 32 and first["scene"].isalnum() and first["scene"].isascii()
    many = await asyncio.gather(*(share(client, sharer, campaignId=campaign["id"]) for _ in range(5)))
    assert {link["scene"] for link in many} == {first["scene"]} and await ShareLink.count() == 1

    shown = await client.get(f"/api/v1/share/{first['scene']}")
    assert shown.status_code == 200
    assert shown.json() == {
        "kind": "referral",
        "campaignId": campaign["id"],
        "sharerNickname": sharer["member"]["nickname"],
    }
    body = shown.text
    assert openid(1) not in body and str(sharer["member"]["id"]) not in body.replace(str(campaign["id"]), "")

    forged = first["scene"][:-1] + ("A" if first["scene"][-1] != "A" else "B")
    for scene in ("AAAAAAAAAAAAAAAAAAAAAAAA", forged, "x" * 33, "abc-def", "%E4%B8%AD"):
        answer = await client.get(f"/api/v1/share/{scene}")
        assert (answer.status_code, answer.json()["code"]) == (404, "referrals.unknown_scene"), scene
    bad = await client.post(
        "/api/v1/me/share-links", headers=sharer["headers"], json={"campaignId": campaign["id"], "groupId": 1}
    )
    assert bad.status_code == 422
    missing = await client.post("/api/v1/me/share-links", headers=sharer["headers"], json={"campaignId": 999999})
    assert (missing.status_code, missing.json()["code"]) == (404, "referrals.target_not_found")
    assert await ShareLink.count() == 1


async def test_a_referral_is_rewarded_once_after_the_holding_period(till, demo):
    campaign = await new_campaign(till)
    sharer = await member_login(till, openid=openid(1))
    link = await share(till, sharer, campaignId=campaign["id"])
    friend = await login_with(till, link["scene"], openid=openid(2))
    assert friend["isNew"] and friend["member"]["enrolledVia"] == "referral"
    assert await Referral.count() == 1

    order = await pay(till, demo, openid(2), "ref-first-0001")
    assert [(r["role"], r["status"]) for r in await rewards()] == [("referrer", "held"), ("referee", "held")]
    await pay(till, demo, openid(2), "ref-second-001")  # a second order makes nothing more
    assert len(await rewards()) == 2
    assert await referrals.release_due() == 0
    assert {r["status"] for r in await rewards()} == {"held"}  # not yet: the holding period runs

    later = datetime.now(UTC) + timedelta(days=7, seconds=1)
    await asyncio.gather(referrals.release_due(now=later), referrals.release_due(now=later))
    assert [(r["role"], r["status"]) for r in await rewards()] == [("referrer", "released"), ("referee", "released")]
    assert await PointsEntry.count().where(PointsEntry.source_type == "referral_reward") == 2
    before = await points.balance_of(sharer["member"]["id"])
    assert before[0] == 200
    await Member.update({Member.nickname: "王小明"}).where(Member.id == friend["member"]["id"])
    mine = (await till.get("/api/v1/me/referrals", headers=sharer["headers"])).json()["items"]
    assert [(m["rewardStatus"], m["rewardPoints"], m["nickname"]) for m in mine] == [("released", 200, "王*明")]

    # The first order refunded after release: both rewards are clawed back through the ledger.
    cashier1 = await staff_login(till, "cashier1")
    assert (await refund(till, cashier1, order["id"], 100, "ref-refund-0001")).status_code == 201
    assert {r["status"] for r in await rewards()} == {"clawed_back"}
    assert await points.balance_of(sharer["member"]["id"]) == (0, 0)


async def test_a_refund_before_release_cancels_the_reward(till, demo):
    campaign = await new_campaign(till)
    sharer = await member_login(till, openid=openid(1))
    link = await share(till, sharer, campaignId=campaign["id"])
    await login_with(till, link["scene"], openid=openid(2))
    order = await pay(till, demo, openid(2), "ref-cancel-001")
    cashier1 = await staff_login(till, "cashier1")
    assert (await refund(till, cashier1, order["id"], 5000, "ref-cancel-rf1")).status_code == 201
    assert {r["status"] for r in await rewards()} == {"cancelled"}
    await referrals.release_due(now=datetime.now(UTC) + timedelta(days=30))
    assert {r["status"] for r in await rewards()} == {"cancelled"}
    assert await PointsEntry.count().where(PointsEntry.source_type == "referral_reward") == 0


async def test_no_reward_for_self_referral_second_referrers_or_old_customers(till, demo):
    campaign = await new_campaign(till, holdingPeriodDays=0)
    sharer = await member_login(till, openid=openid(1))
    link = await share(till, sharer, campaignId=campaign["id"])
    other = await share(till, await member_login(till, openid=openid(3)), campaignId=campaign["id"])

    myself = await login_with(till, link["scene"], openid=openid(1))  # the sharer scans their own poster
    assert myself["member"]["id"] == sharer["member"]["id"]
    customer = await member_login(till, openid=openid(4))
    await pay(till, demo, openid(4), "ref-old-00001")  # a member who has paid already
    await login_with(till, link["scene"], openid=openid(4))
    friend = await login_with(till, link["scene"], openid=openid(2))
    again = await login_with(till, other["scene"], openid=openid(2))  # a second referrer: first touch wins
    assert again["member"]["id"] == friend["member"]["id"]
    referred = await Referral.select(Referral.referee, Referral.referrer)
    assert referred == [{"referee": friend["member"]["id"], "referrer": sharer["member"]["id"]}]
    assert customer["member"]["id"] not in {r["referee"] for r in referred}

    # No cycle: the friend's link cannot bring in the sharer, who has not paid yet either.
    back = await share(till, friend, campaignId=campaign["id"])
    await login_with(till, back["scene"], openid=openid(1))
    assert await Referral.count() == 1

    await pay(till, demo, openid(2), "ref-friend-001")  # holding period 0: posted at once, once
    assert [(r["role"], r["status"]) for r in await rewards()] == [("referrer", "released"), ("referee", "released")]
    assert await points.balance_of(sharer["member"]["id"]) == (200, 0)


async def test_a_till_enrolment_with_a_scene_is_a_referral(till, demo):
    campaign = await new_campaign(till, holdingPeriodDays=0)
    sharer = await member_login(till, openid=openid(1))
    link = await share(till, sharer, campaignId=campaign["id"])
    order = await pay(till, demo, openid(5), "ref-till-00001", scene=link["scene"])
    assert order["memberEnrolled"] is True
    referral = await Referral.select(Referral.referee, Referral.referrer, Referral.status).first()
    assert referral == {"referee": order["memberId"], "referrer": sharer["member"]["id"], "status": "qualified"}
    assert {r["status"] for r in await rewards()} == {"released"}


async def test_a_member_who_never_paid_is_referred_by_their_first_payment_one_who_paid_is_not(till, demo):
    campaign = await new_campaign(till, holdingPeriodDays=0)
    sharer = await member_login(till, openid=openid(1))
    link = await share(till, sharer, campaignId=campaign["id"])
    await pay(till, demo, openid(6), "ref-someone-01")  # someone else's paid order counts for nobody else
    browsing = await member_login(till, openid=openid(7))  # a member already, who has never paid
    regular = await member_login(till, openid=openid(8))
    await pay(till, demo, openid(8), "ref-regular-01")

    first = await pay(till, demo, openid(7), "ref-browsing-1", scene=link["scene"])
    assert (first["memberId"], first["memberEnrolled"]) == (browsing["member"]["id"], False)
    again = await pay(till, demo, openid(8), "ref-regular-02", scene=link["scene"])
    assert again["memberId"] == regular["member"]["id"]
    referred = await Referral.select(Referral.referee, Referral.status)
    assert referred == [{"referee": browsing["member"]["id"], "status": "qualified"}]


async def test_fifty_sign_ups_in_an_hour_hit_the_daily_cap(till, demo):
    campaign = await new_campaign(till, dailyCapPerReferrer=3, holdingPeriodDays=0, refereePoints=0)
    sharer = await member_login(till, openid=openid(1))
    link = await share(till, sharer, campaignId=campaign["id"])
    for n in range(50):
        await login_with(till, link["scene"], openid=openid(100 + n))
    assert await Referral.count() == 50
    cashier1 = await staff_login(till, "cashier1")
    await asyncio.gather(*(pay(till, demo, openid(100 + n), f"ref-cap-{n:06d}", cashier=cashier1) for n in range(50)))
    statuses = [r["status"] for r in await rewards()]
    assert sorted(statuses) == ["capped"] * 47 + ["released"] * 3
    assert await points.balance_of(sharer["member"]["id"]) == (600, 0)
    await Member.update({Member.nickname: "Alice Chen"}).where(Member.id == sharer["member"]["id"])
    board = (await till.get(f"/api/v1/referral-campaigns/{campaign['id']}/leaderboard")).json()["items"]
    assert [(row["rank"], row["referrals"], row["nickname"]) for row in board] == [(1, 50, "A****n")]


async def test_hq_alone_creates_campaigns_and_bad_ones_are_refused(client, demo):
    hq = await staff_login(client, "hq")
    for changes, field in (
        ({"endsAt": "2020-01-01T00:00:00+08:00"}, "endsAt"),
        ({"posterTemplate": "nope"}, "posterTemplate"),
        ({"referrerPoints": 0, "refereePoints": 0}, "referrerPoints"),
    ):
        response = await client.post(ADMIN, headers=hq, json=campaign_body(**changes))
        assert response.status_code == 422 and field in response.json()["details"], (changes, response.text)
    for changes in (
        {"referrerPoints": -1},
        {"holdingPeriodDays": 365},
        {"dailyCapPerReferrer": 0},
        {"pointsBalance": 5},
    ):
        assert (await client.post(ADMIN, headers=hq, json=campaign_body(**changes))).status_code == 422
    manager = await staff_login(client, "manager1")
    assert (await client.post(ADMIN, headers=manager, json=campaign_body())).status_code == 403
    shopper = await member_login(client, openid=openid(9))
    assert (await client.post(ADMIN, headers=shopper["headers"], json=campaign_body())).status_code == 403
    assert (await client.get("/api/v1/referral-campaigns/999999")).status_code == 404
    created = await new_campaign(client)
    shown = (await client.get(f"/api/v1/referral-campaigns/{created['id']}")).json()
    assert (shown["referrerPoints"], shown["holdingPeriodDays"], shown["posterTemplate"]) == (200, 7, "referral")


async def test_a_referral_between_two_members_found_to_be_one_person_is_undone(till, demo):
    campaign = await new_campaign(till, holdingPeriodDays=0)
    sharer = await member_login(till, openid=openid(1))
    link = await share(till, sharer, campaignId=campaign["id"])
    second = await login_with(till, link["scene"], openid=openid(2))  # the same person's second WeChat account
    await pay(till, demo, openid(2), "ref-merge-0001")
    assert {r["status"] for r in await rewards()} == {"released"}
    merged = await till.post(
        "/api/v1/admin/members/merge",
        headers=await staff_login(till, "hq"),
        json={"survivorId": sharer["member"]["id"], "mergedId": second["member"]["id"]},
    )
    assert merged.status_code == 200, merged.text
    assert (await Referral.select(Referral.status).first())["status"] == "void"
    assert {r["status"] for r in await rewards()} == {"clawed_back"}
    assert {r["member"] for r in await rewards()} == {sharer["member"]["id"]}
    assert (await till.get("/api/v1/me/referrals", headers=sharer["headers"])).json()["items"] == []
    link_after = await ShareLink.select(ShareLink.sharer).first()
    assert link_after["sharer"] == sharer["member"]["id"]
    earned = 5000 * 2 // 100  # the order's own points stay: only the referral's are undone
    assert await points.balance_of(sharer["member"]["id"]) == (earned, 0)


async def test_self_referral_by_unionid_or_phone_earns_nothing(till, demo):
    from tests.members.test_merge import phone_code

    campaign = await new_campaign(till, holdingPeriodDays=0)
    sharer = await member_login(till, openid=openid(1), unionid="uReferralSameperson0001")
    assert (
        await till.post(
            "/api/v1/me/phone", headers=sharer["headers"], json={"code": await phone_code(till, "13800138000")}
        )
    ).status_code == 200
    link = await share(till, sharer, campaignId=campaign["id"])
    # Another mini-program of the chain, the same WeChat user: one member by unionid, nobody referred.
    same = await login_with(till, link["scene"], openid=openid(2), unionid="uReferralSameperson0001")
    assert same["member"]["id"] == sharer["member"]["id"] and await Referral.count() == 0
    # A second WeChat account is bound first, then shows the sharer's phone: one person, the referral void.
    second = await login_with(till, link["scene"], openid=openid(3))
    assert await Referral.count() == 1
    bound = await till.post(
        "/api/v1/me/phone", headers=second["headers"], json={"code": await phone_code(till, "13800138000")}
    )
    assert bound.status_code == 200 and bound.json()["id"] == sharer["member"]["id"]
    assert (await Referral.select(Referral.status).first())["status"] == "void"
    await pay(till, demo, openid(3), "ref-phone-0001")  # the person's paid order earns no referral reward
    assert await rewards() == []
    assert await PointsEntry.count().where(PointsEntry.source_type == "referral_reward") == 0


async def test_five_links_racing_for_one_new_member_bind_one_referral(client, demo):
    campaign = await new_campaign(client)
    sharers = [await member_login(client, openid=openid(10 + n)) for n in range(5)]
    links = [await share(client, sharer, campaignId=campaign["id"]) for sharer in sharers]
    newcomer = await member_login(client, openid=openid(20))
    bound = await asyncio.gather(
        *(referrals.attribute(newcomer["member"]["id"], link["scene"], is_new=True) for link in links)
    )
    assert sorted(bound) == [False] * 4 + [True]
    rows = await Referral.select(Referral.referee, Referral.referrer)
    winner = sharers[bound.index(True)]["member"]["id"]
    assert rows == [{"referee": newcomer["member"]["id"], "referrer": winner}]


def test_nicknames_are_masked_enough_to_recognise_not_to_identify():
    assert [
        referrals.mask_nickname(name) for name in ("张三丰", "李四", "王", "", "  Alice  ", "欧阳娜娜很长的名字")
    ] == ["张*丰", "李*", "*", "会员", "A***e", "欧****字"]


async def test_the_database_holds_a_share_link_to_one_target_and_a_qualified_referral_to_its_order(client, demo):
    campaign = await new_campaign(client)
    sharer = await member_login(client, openid=openid(1))
    friend = await member_login(client, openid=openid(2))
    with pytest.raises(Exception, match="share_link_has_one_target"):
        await ShareLink.insert(
            ShareLink(scene="A" * 24, sharer=sharer["member"]["id"], target="nothing", created_at=datetime.now(UTC))
        )
    link = await share(client, sharer, campaignId=campaign["id"])
    assert await referrals.attribute(friend["member"]["id"], link["scene"], is_new=True)
    with pytest.raises(Exception, match="referral_qualified_by_an_order"):
        await Referral.update({Referral.status: "qualified"}).where(Referral.referee == friend["member"]["id"])
    assert (await Referral.select(Referral.status).first())["status"] == "bound"


async def test_a_share_link_is_the_configured_base_and_its_scene(make_client, demo):
    async with make_client(share_base_url="https://m.example.com/s/") as client:
        campaign = await new_campaign(client)
        sharer = await member_login(client, openid=openid(9))
        link = await share(client, sharer, campaignId=campaign["id"])
        assert link["url"] == "https://m.example.com/s/" + link["scene"]
