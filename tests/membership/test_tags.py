"""Tags: HQ makes them; HQ tags any member, a store manager only their stores' members."""

import asyncio

import pytest

from backend.members.service import merge_members
from backend.members.tables import MergeReason
from backend.membership.tables import MemberTag, Tag
from tests.conftest import member_login, staff_login
from tests.membership.helpers import ADMIN, a_member, an_order


async def make_tag(client, headers, name: str, group: str | None = None) -> dict:
    body = {"name": name} if group is None else {"name": name, "group": group}
    response = await client.post(f"{ADMIN}/tags", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_hq_makes_tags_once_per_name_in_a_group_and_lists_them(client, demo):
    hq = await staff_login(client, "hq")
    durian = await make_tag(client, hq, "榴莲控", "口味偏好")
    assert (durian["name"], durian["group"]) == ("榴莲控", "口味偏好") and durian["createdAt"]
    again = await client.post(f"{ADMIN}/tags", headers=hq, json={"name": "榴莲控", "group": "口味偏好"})
    assert again.status_code == 409 and again.json()["code"] == "tags.name_taken"
    other_group = await make_tag(client, hq, "榴莲控", "活动")
    plain = await make_tag(client, hq, "VIP")
    assert plain["group"] is None
    listed = await client.get(f"{ADMIN}/tags", headers=await staff_login(client, "manager1"))
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["items"]] == [plain["id"], durian["id"], other_group["id"]]


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x" * 51}, {"name": "ok", "color": "red"}, {"name": 5}, {"name": "ok", "group": ""}],
    ids=["missing", "empty", "too-long", "unknown-field", "wrong-type", "empty-group"],
)
async def test_bad_tags_are_refused_and_nothing_is_made(client, demo, body):
    response = await client.post(f"{ADMIN}/tags", headers=await staff_login(client, "hq"), json=body)
    assert response.status_code == 422 and response.json()["code"] == "request.invalid", response.text
    assert await Tag.count() == 0


async def test_who_may_make_and_put_tags(client, demo):
    hq = await staff_login(client, "hq")
    tag = await make_tag(client, hq, "VIP")
    member_id = await a_member(demo["S001"])
    manager, cashier = await staff_login(client, "manager1"), await staff_login(client, "cashier1")
    shopper = (await member_login(client, openid="oTagShopper000000000000001"))["headers"]
    made = await client.post(f"{ADMIN}/tags", headers=manager, json={"name": "门店标签"})
    assert made.status_code == 403
    path = f"{ADMIN}/members/{member_id}/tags"
    for headers, status in ((cashier, 403), (shopper, 403), ({}, 401)):
        assert (await client.post(path, headers=headers, json={"tagIds": [tag["id"]]})).status_code == status
        assert (await client.get(f"{ADMIN}/tags", headers=headers)).status_code == status
        assert (await client.delete(f"{path}/{tag['id']}", headers=headers)).status_code == status
    assert (await client.post(f"{ADMIN}/tags", json={"name": "x"})).status_code == 401
    assert await MemberTag.count() == 0


async def test_hq_tags_any_member_idempotently_and_takes_tags_off(client, demo):
    hq = await staff_login(client, "hq")
    vip, durian = await make_tag(client, hq, "VIP"), await make_tag(client, hq, "榴莲控", "口味偏好")
    member_id = await a_member(demo["S003"])
    path = f"{ADMIN}/members/{member_id}/tags"
    first = await client.post(path, headers=hq, json={"tagIds": [vip["id"]]})
    assert first.status_code == 200 and [t["id"] for t in first.json()["items"]] == [vip["id"]]
    both = await client.post(path, headers=hq, json={"tagIds": [durian["id"], vip["id"], vip["id"]]})
    assert [t["id"] for t in both.json()["items"]] == [vip["id"], durian["id"]]
    assert await MemberTag.count() == 2
    assert (await client.delete(f"{path}/{vip['id']}", headers=hq)).status_code == 204
    assert (await client.delete(f"{path}/{vip['id']}", headers=hq)).status_code == 204  # already off
    listed = await client.get(path, headers=hq)
    assert [t["id"] for t in listed.json()["items"]] == [durian["id"]]
    gone = await client.delete(f"{path}/999", headers=hq)
    assert gone.status_code == 404 and gone.json()["code"] == "tags.not_found"


async def test_a_store_manager_tags_only_their_stores_members(client, demo):
    hq = await staff_login(client, "hq")
    tag = await make_tag(client, hq, "常客")
    manager = await staff_login(client, "manager1")  # S001's
    enrolled_here = await a_member(demo["S001"])
    bought_here = await a_member(demo["S002"])
    await an_order(bought_here, demo["S001"], 500)
    elsewhere = await a_member(demo["S002"])
    await an_order(elsewhere, demo["S003"], 500)
    for member_id in (enrolled_here, bought_here):
        response = await client.post(f"{ADMIN}/members/{member_id}/tags", headers=manager, json={"tagIds": [tag["id"]]})
        assert response.status_code == 200, response.text
    for path in (f"{ADMIN}/members/{elsewhere}/tags", f"{ADMIN}/members/999999/tags"):
        refused = await client.post(path, headers=manager, json={"tagIds": [tag["id"]]})
        assert refused.status_code == 404 and refused.json()["code"] == "members.not_found"
        assert (await client.get(path, headers=manager)).status_code == 404
        assert (await client.delete(f"{path}/{tag['id']}", headers=manager)).status_code == 404
    assert await MemberTag.count() == 2


@pytest.mark.parametrize(
    "body, code",
    [
        ({"tagIds": []}, "request.invalid"),
        ({"tagIds": ["1"]}, "request.invalid"),
        ({"tagIds": [0]}, "request.invalid"),
        ({"tagIds": [1], "by": "me"}, "request.invalid"),
        ({}, "request.invalid"),
        ({"tagIds": "TAG"}, "unknown"),
    ],
    ids=["empty", "string-id", "zero", "unknown-field", "missing", "unknown-tag"],
)
async def test_bad_tagging_is_refused_and_nothing_is_put_on(client, demo, body, code):
    hq = await staff_login(client, "hq")
    tag = await make_tag(client, hq, "VIP")
    member_id = await a_member(demo["S001"])
    if code == "unknown":
        body, code = {"tagIds": [tag["id"], tag["id"] + 7]}, "tags.unknown"
    response = await client.post(f"{ADMIN}/members/{member_id}/tags", headers=hq, json=body)
    assert response.status_code == 422 and response.json()["code"] == code, response.text
    if code == "tags.unknown":
        assert response.json()["details"] == {"tagIds": [tag["id"] + 7]}
    assert await MemberTag.count() == 0


async def test_a_merge_moves_tags_to_the_survivor_once_each(client, demo):
    hq = await staff_login(client, "hq")
    vip, durian, mango = [await make_tag(client, hq, name) for name in ("VIP", "榴莲控", "芒果控")]
    survivor, merged = await a_member(demo["S001"]), await a_member(demo["S002"])
    await client.post(f"{ADMIN}/members/{survivor}/tags", headers=hq, json={"tagIds": [vip["id"], durian["id"]]})
    await client.post(f"{ADMIN}/members/{merged}/tags", headers=hq, json={"tagIds": [durian["id"], mango["id"]]})
    await merge_members(survivor, merged, reason=MergeReason.hq)
    rows = await MemberTag.select(MemberTag.member, MemberTag.tag).order_by(MemberTag.tag)
    assert rows == [{"member": survivor, "tag": t["id"]} for t in (vip, durian, mango)]
    gone = await client.post(f"{ADMIN}/members/{merged}/tags", headers=hq, json={"tagIds": [vip["id"]]})
    assert gone.status_code == 404  # a merged member is its survivor now


async def test_many_staff_tagging_one_member_at_once_put_each_tag_on_once(client, demo):
    hq = await staff_login(client, "hq")
    manager = await staff_login(client, "manager1")
    vip, durian = await make_tag(client, hq, "VIP"), await make_tag(client, hq, "榴莲控")
    member_id = await a_member(demo["S001"])
    answers = await asyncio.gather(
        *(
            client.post(
                f"{ADMIN}/members/{member_id}/tags",
                headers=hq if i % 2 else manager,
                json={"tagIds": [vip["id"], durian["id"]] if i % 3 else [durian["id"]]},
            )
            for i in range(30)
        )
    )
    assert [a.status_code for a in answers] == [200] * 30
    rows = await MemberTag.select(MemberTag.tag).where(MemberTag.member == member_id).order_by(MemberTag.tag)
    assert rows == [{"tag": vip["id"]}, {"tag": durian["id"]}]
