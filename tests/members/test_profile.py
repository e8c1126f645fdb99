"""The shopper sets the nickname and avatar WeChat's form gave them; every page that shows them does at once."""

import io

import pytest
from PIL import Image

from backend.members.tables import Member
from tests.conftest import member_login
from tests.groupbuy.test_seats import new_campaign, open_group
from tests.posters.test_posters import poster
from tests.referrals.test_referrals import login_with, share
from tests.referrals.test_referrals import new_campaign as new_referral_campaign


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (0x33, 0x66, 0xCC)).save(out, "JPEG")
    return out.getvalue()


async def patch_me(client, member, **body):
    return await client.patch("/api/v1/me", headers=member["headers"], json=body)


async def test_a_nickname_and_avatar_show_on_the_profile_posters_groups_and_referral_lists(client, demo):
    shopper = await member_login(client, openid="oProfile000000000000000001")
    uploaded = await client.post(
        "/api/v1/me/avatar", headers={**shopper["headers"], "Content-Type": "image/jpeg"}, content=jpeg()
    )
    assert uploaded.status_code == 200, uploaded.text
    avatar = uploaded.json()["avatarUrl"]
    campaign = await new_campaign(client, demo)
    group = (await open_group(client, shopper, campaign["id"], demo["S001"])).json()["group"]
    before = await poster(client, shopper, "jpeg", groupId=group["id"])

    changed = await patch_me(client, shopper, nickname="  张三丰  ", avatarUrl=avatar)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["nickname"], changed.json()["avatarUrl"]) == ("张三丰", avatar)
    assert (await client.get("/api/v1/me", headers=shopper["headers"])).json()["nickname"] == "张三丰"
    shown = (await client.get(f"/api/v1/groupbuy/groups/{group['id']}")).json()["members"]
    assert shown == [{"nickname": "张三丰", "avatarUrl": avatar, "virtual": False}]
    after = await poster(client, shopper, "jpeg", groupId=group["id"])  # at once: no wait for the plan to age
    assert after.headers["etag"] != before.headers["etag"]

    referrals = await new_referral_campaign(client)
    link = await share(client, shopper, campaignId=referrals["id"])
    friend = await login_with(client, link["scene"], openid="oProfileFriend00000000001")
    assert (await patch_me(client, friend, nickname="Alice")).status_code == 200
    mine = (await client.get("/api/v1/me/referrals", headers=shopper["headers"])).json()["items"]
    assert [m["nickname"] for m in mine] == ["A***e"]  # masked, as the contract says
    assert (await client.get(f"/api/v1/share/{link['scene']}")).json()["sharerNickname"] == "张三丰"
    assert (await patch_me(client, shopper)).status_code == 200  # nothing sent, nothing changed
    assert (await client.get("/api/v1/me", headers=shopper["headers"])).json()["nickname"] == "张三丰"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"nickname": ""}, "request.invalid"),
        ({"nickname": "   "}, "members.invalid_nickname"),
        ({"nickname": "一" * 21}, "members.invalid_nickname"),
        ({"nickname": "a\nb"}, "members.invalid_nickname"),
        ({"nickname": 7}, "request.invalid"),
        ({"avatarUrl": "https://evil.example.com/me.jpg"}, "members.avatar_not_ours"),
        ({"avatarUrl": "/api/v1/avatars/" + "0" * 64 + ".jpg"}, "members.avatar_not_ours"),
        ({"pointsBalance": 100}, "request.invalid"),
    ],
)
async def test_a_profile_change_that_cannot_be_is_refused_and_changes_nothing(client, demo, body, code):
    shopper = await member_login(client, openid="oProfileBad000000000000001")
    response = await patch_me(client, shopper, **body)
    assert (response.status_code, response.json()["code"]) == (422, code), response.text
    row = await Member.select(Member.nickname, Member.avatar_url).where(Member.id == shopper["member"]["id"]).first()
    assert row == {"nickname": "", "avatar_url": ""}


async def test_another_members_avatar_is_not_ours_to_show(client, demo):
    owner = await member_login(client, openid="oProfileOwner000000000001")
    other = await member_login(client, openid="oProfileOther000000000001")
    uploaded = await client.post(
        "/api/v1/me/avatar", headers={**owner["headers"], "Content-Type": "image/jpeg"}, content=jpeg()
    )
    taken = await patch_me(client, other, avatarUrl=uploaded.json()["avatarUrl"])
    assert (taken.status_code, taken.json()["code"]) == (422, "members.avatar_not_ours")
    assert (await client.patch("/api/v1/me", json={"nickname": "x"})).status_code == 401
