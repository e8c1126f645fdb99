"""One person, one member: merges on a shared phone or unionid, and on HQ's request."""

import asyncio
from datetime import timedelta

from backend.core.clock import utcnow
from backend.members import service as members
from backend.members.tables import EnrolmentChannel, IdentityKind, Member, MemberIdentity, MemberMerge
from backend.members.wechat import WeChatSession
from backend.points import service as points
from backend.points.tables import PointsLot
from tests.conftest import member_login, staff_login

MERGE = "/api/v1/admin/members/merge"


async def phone_code(client, phone: str, **extra) -> str:
    response = await client.post("/api/v1/sandbox/wechat/phone-codes", json={"phone": phone, **extra})
    assert response.status_code == 201, response.text
    return response.json()["code"]


async def lots_of(member_id: int) -> list[tuple[int, object, int | None]]:
    rows = (
        await PointsLot.select(PointsLot.remaining, PointsLot.expires_at, PointsLot.store)
        .where((PointsLot.member == member_id) & PointsLot.expired_at.is_null())
        .order_by(PointsLot.expires_at)
    )
    return sorted((r["remaining"], r["expires_at"], r["store"]) for r in rows)


async def test_till_member_binding_a_phone_another_member_holds_becomes_one_member(client, demo, settings):
    # The older member: enrolled in the mini-program, bound the phone, earned at two stores months apart.
    older = await member_login(client)
    bound = await client.post(
        "/api/v1/me/phone", json={"code": await phone_code(client, "13800138000")}, headers=older["headers"]
    )
    assert bound.status_code == 200 and bound.json()["phoneMasked"] == "138****8000"
    older_id = older["member"]["id"]
    await points.earn(
        older_id,
        300,
        store_id=demo["S001"],
        source_type="order",
        source_id="o-old",
        idempotency_key="o-old:earn",
        now=utcnow() - timedelta(days=200),
    )
    await points.earn(
        older_id, 50, store_id=demo["S002"], source_type="order", source_id="o-mid", idempotency_key="o-mid:earn"
    )
    # The newer member: enrolled at a till by openid, earned there.
    session = WeChatSession(app_id=settings.wechat_app_id, openid="oTillShopper000000000000001", unionid=None)
    till_id, is_new = await members.find_or_enrol_wechat_member(
        session, channel=EnrolmentChannel.cashier, store_id=demo["S003"]
    )
    assert is_new
    await points.earn(
        till_id, 120, store_id=demo["S003"], source_type="order", source_id="o-till", idempotency_key="o-till:earn"
    )
    lots_before = await lots_of(older_id) + await lots_of(till_id)

    # Later the till shopper opens the mini-program (same openid) and binds the same phone.
    newer = await member_login(client, openid="oTillShopper000000000000001")
    assert newer["member"]["id"] == till_id and newer["isNew"] is False
    response = await client.post(
        "/api/v1/me/phone", json={"code": await phone_code(client, "13800138000")}, headers=newer["headers"]
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == older_id and body["pointsBalance"] == 470 and body["accessToken"]
    assert (await client.get("/api/v1/me", headers=newer["headers"])).status_code == 401  # merged: token dead
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert me.json()["pointsBalance"] == 470 and me.json()["phoneMasked"] == "138****8000"
    assert sorted(await lots_of(older_id)) == sorted(lots_before)  # every lot, store and expiry date intact
    assert await points.balance_of(till_id) == (0, 0)
    audit = await MemberMerge.select().first()
    assert (audit["survivor"], audit["merged"], audit["reason"]) == (older_id, till_id, "phone")
    assert (audit["points_moved"], audit["lots_moved"], audit["identities_moved"]) == (120, 1, 1)
    kinds = sorted(
        r["kind"] for r in await MemberIdentity.select(MemberIdentity.kind).where(MemberIdentity.member == older_id)
    )
    assert kinds == sorted([IdentityKind.phone, IdentityKind.wechat_openid, IdentityKind.wechat_openid])
    # A refund of the till order after the merge claws back from the survivor.
    await points.reverse("order", "o-till", refunded=1, of=1, idempotency_key="refund-o-till")
    assert await points.balance_of(older_id) == (350, 0)


async def test_a_unionid_held_by_another_member_merges_the_two(client):
    first = await member_login(client, openid="oAppOneUser000000000000001")
    second = await member_login(client, openid="oAppTwoUser000000000000001", unionid="uSamePerson00000000000001")
    assert first["member"]["id"] != second["member"]["id"]
    again = await member_login(client, openid="oAppOneUser000000000000001", unionid="uSamePerson00000000000001")
    assert again["member"]["id"] == first["member"]["id"]  # the older one survives
    assert await Member.count().where(Member.status == "active") == 1
    assert (await MemberMerge.select(MemberMerge.reason).first())["reason"] == "unionid"


async def test_bad_phone_codes_change_nothing(client):
    shopper = await member_login(client)
    foreign = await phone_code(client, "13900139000", appid="wxSomeoneElse")
    response = await client.post("/api/v1/me/phone", json={"code": foreign}, headers=shopper["headers"])
    assert response.status_code == 422 and response.json()["code"] == "members.phone_watermark_mismatch"
    unknown = await client.post("/api/v1/me/phone", json={"code": "never-issued"}, headers=shopper["headers"])
    assert unknown.status_code == 422 and unknown.json()["code"] == "members.invalid_phone_code"
    code = await phone_code(client, "13900139000")
    assert (await client.post("/api/v1/me/phone", json={"code": code}, headers=shopper["headers"])).status_code == 200
    replay = await client.post("/api/v1/me/phone", json={"code": code}, headers=shopper["headers"])
    assert replay.status_code == 422
    assert (await client.post("/api/v1/me/phone", json={"code": code})).status_code == 401
    assert await MemberIdentity.count().where(MemberIdentity.kind == IdentityKind.phone) == 1


async def test_hq_merges_once_and_refuses_what_makes_no_sense(client, demo):
    hq = await staff_login(client, "hq")
    a, b, c = [(await member_login(client))["member"]["id"] for _ in range(3)]
    await points.earn(b, 40, store_id=None, source_type="order", source_id="b1", idempotency_key="b1:earn")
    first = await client.post(MERGE, json={"survivorId": a, "mergedId": b}, headers=hq)
    assert first.status_code == 200 and first.json()["pointsBalance"] == 40
    again = await client.post(MERGE, json={"survivorId": a, "mergedId": b}, headers=hq)
    assert again.status_code == 200 and again.json() == first.json()
    for body, status, code in (
        ({"survivorId": c, "mergedId": b}, 409, "members.already_merged"),
        ({"survivorId": b, "mergedId": c}, 409, "members.already_merged"),
        ({"survivorId": a, "mergedId": a}, 422, "members.merge_self"),
        ({"survivorId": a, "mergedId": 999999}, 404, "members.not_found"),
        ({"survivorId": a}, 422, "request.invalid"),
    ):
        response = await client.post(MERGE, json=body, headers=hq)
        assert (response.status_code, response.json()["code"]) == (status, code), body
    for who in ("cashier1", "manager1"):
        assert (
            await client.post(MERGE, json={"survivorId": a, "mergedId": c}, headers=await staff_login(client, who))
        ).status_code == 403
    assert await MemberMerge.count() == 1 and await points.balance_of(a) == (40, 0)


async def test_concurrent_merges_fold_each_member_once_and_never_in_a_cycle(client, demo):
    hq = await staff_login(client, "hq")
    a, b = (await member_login(client))["member"]["id"], (await member_login(client))["member"]["id"]
    await points.earn(a, 10, store_id=None, source_type="order", source_id="a1", idempotency_key="a1:earn")
    await points.earn(b, 20, store_id=None, source_type="order", source_id="b1", idempotency_key="b1:earn")
    requests = [{"survivorId": a, "mergedId": b}, {"survivorId": b, "mergedId": a}] * 10
    responses = await asyncio.gather(*(client.post(MERGE, json=body, headers=hq) for body in requests))
    assert {r.status_code for r in responses} <= {200, 409}
    assert await MemberMerge.count() == 1
    survivors = await Member.select(Member.id).where(Member.status == "active")
    assert len(survivors) == 1
    assert await points.balance_of(survivors[0]["id"]) == (30, 0)
    winner = await MemberMerge.select().first()
    assert all(r.json()["id"] == winner["survivor"] for r in responses if r.status_code == 200)
