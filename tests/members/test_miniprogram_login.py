"""Shopper login through the sandbox's one-time codes: find or enrol by openid (and unionid)."""

import asyncio

import jwt

from backend.members.tables import IdentityKind, Member, MemberIdentity
from tests.conftest import member_login, staff_login

LOGIN = "/api/v1/auth/miniprogram/login"


async def new_code(client, **wechat: str) -> str:
    return (await client.post("/api/v1/sandbox/wechat/login-codes", json=wechat)).json()["code"]


async def test_first_login_enrols_and_me_answers(client):
    body = await member_login(client)
    assert body["isNew"] is True
    assert body["member"]["enrolledVia"] == "miniprogram"
    assert body["member"]["pointsBalance"] == 0 and body["member"]["phoneMasked"] is None
    assert "sessionKey" not in str(body) and "session_key" not in str(body)
    me = await client.get("/api/v1/me", headers=body["headers"])
    assert me.status_code == 200
    assert me.json() == body["member"]
    assert set(me.json()) == {
        "id",
        "nickname",
        "avatarUrl",
        "phoneMasked",
        "pointsBalance",
        "enrolledStoreId",
        "enrolledVia",
        "createdAt",
        "tier",
        "paidMemberUntil",
    }
    assert me.json()["tier"] is None and me.json()["paidMemberUntil"] is None  # no ladder, no paid plan


async def test_same_openid_is_the_same_member(client):
    first = await member_login(client, openid="oSameUser00000000000000001")
    again = await member_login(client, openid="oSameUser00000000000000001")
    assert again["isNew"] is False
    assert again["member"]["id"] == first["member"]["id"]
    assert await Member.count() == 1


async def test_a_login_code_works_once(client):
    code = await new_code(client)
    assert (await client.post(LOGIN, json={"code": code})).status_code == 200
    replay = await client.post(LOGIN, json={"code": code})
    assert replay.status_code == 401 and replay.json()["code"] == "auth.invalid_code"


async def test_concurrent_replays_of_one_code_log_in_once(client):
    code = await new_code(client)
    responses = await asyncio.gather(*(client.post(LOGIN, json={"code": code}) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [200] + [401] * 9
    assert await Member.count() == 1


async def test_concurrent_first_logins_of_one_user_enrol_one_member(client):
    codes = [await new_code(client, openid="oRacingUser000000000000001") for _ in range(10)]
    responses = await asyncio.gather(*(client.post(LOGIN, json={"code": c}) for c in codes))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["member"]["id"] for r in responses}) == 1
    assert [r.json()["isNew"] for r in responses].count(True) == 1
    assert await Member.count() == 1
    assert await MemberIdentity.count() == 1


async def test_unionid_links_a_second_openid_to_the_same_member(client):
    first = await member_login(client, openid="oAppOne0000000000000000001", unionid="uPerson000000000000000001")
    other_app = await member_login(client, openid="oAppTwo0000000000000000001", unionid="uPerson000000000000000001")
    assert other_app["isNew"] is False and other_app["member"]["id"] == first["member"]["id"]
    kinds = sorted(r["kind"] for r in await MemberIdentity.select(MemberIdentity.kind))
    assert kinds == sorted([IdentityKind.wechat_openid, IdentityKind.wechat_openid, IdentityKind.wechat_unionid])


async def test_me_needs_a_valid_member_token(client, demo, settings):
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me", headers={"Authorization": "Basic abc"})).status_code == 401
    staff = await staff_login(client, "cashier1")
    refused = await client.get("/api/v1/me", headers=staff)
    assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden"
    body = await member_login(client)
    forged = jwt.encode(
        {"iss": "mall", "sub": f"member:{body['member']['id']}", "iat": 1, "exp": 9999999999},
        "a-different-secret-key-of-enough-length",
        algorithm="HS256",
    )
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})).status_code == 401
    expired = jwt.encode(
        {"iss": "mall", "sub": f"member:{body['member']['id']}", "iat": 1, "exp": 2},
        settings.secret_key,
        algorithm="HS256",
    )
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and "expired" in response.json()["message"]


async def test_bad_login_bodies(client):
    for body in (
        {},
        {"code": ""},
        {"code": "x" * 200},
        {"code": "abc", "scene": "not a scene!"},
        {"code": "abc", "openid": "oInjected"},
    ):
        response = await client.post(LOGIN, json=body)
        assert response.status_code == 422, body
    assert await Member.count() == 0


async def test_sandbox_endpoints_are_absent_outside_the_sandbox(make_client, wechatpay_credentials):
    async with make_client(**wechatpay_credentials, wechat_app_secret="s" * 32) as client:
        for path in ("/api/v1/sandbox/wechat/login-codes", "/api/v1/sandbox/payments/T0000000000000001/confirm"):
            response = await client.post(path, json={})
            assert response.status_code == 404 and response.json()["code"] == "request.not_found"
