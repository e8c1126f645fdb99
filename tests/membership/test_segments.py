"""Segments: rules the database evaluates, counted, paged and exported; bad rules change nothing."""

import csv
import io

import pytest
from piccolo.querystring import QueryString

from backend.core.clock import utcnow
from backend.core.db import get_engine
from backend.members.tables import Member, MemberStatus
from backend.membership.schemas import SegmentRules
from backend.membership.segments import members_matching, spend_by_member
from backend.membership.service import find_segment
from backend.membership.tables import MemberTag, Segment
from tests.conftest import member_login, staff_login
from tests.membership.helpers import ADMIN, a_member, an_order


async def tag(client, hq, name: str) -> int:
    response = await client.post(f"{ADMIN}/tags", headers=hq, json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def put_tags(member_id: int, *tag_ids: int) -> None:
    await MemberTag.insert(*(MemberTag(member=member_id, tag=t, created_at=utcnow()) for t in tag_ids))


@pytest.fixture
async def shoppers(client, demo) -> dict:
    """Six members with their orders; `F` was merged away and keeps rows that must not count."""
    hq = await staff_login(client, "hq")
    vip, durian = await tag(client, hq, "VIP"), await tag(client, hq, "榴莲控")
    s1, s2, s3 = demo["S001"], demo["S002"], demo["S003"]
    m = {
        "A": await a_member(s1, via="cashier", nickname="阿明"),
        "B": await a_member(s2, via="miniprogram"),
        "C": await a_member(s1, via="referral"),
        "D": await a_member(s3, via="cashier", phone="+8613800138000"),
        "E": await a_member(s1, via="cashier"),
        "F": await a_member(s1, via="cashier"),
    }
    await put_tags(m["A"], vip)
    await put_tags(m["B"], durian)
    await put_tags(m["C"], vip, durian)
    await put_tags(m["E"], vip)
    await put_tags(m["F"], vip)
    await an_order(m["A"], s1, 30000, days_ago=10)
    await an_order(m["A"], s2, 20000, days_ago=40)
    await an_order(m["B"], s2, 5000, days_ago=100)
    await an_order(m["C"], s1, 200000, days_ago=5, refunded_fen=50000)
    await an_order(m["E"], s1, 10000, days_ago=3, refunded_fen=10000)  # given back in full: not a sale
    await an_order(m["E"], s1, 8000, days_ago=2, paid=False)
    await an_order(None, s1, 9000, days_ago=1)  # a walk-in who never became a member
    await an_order(m["F"], s1, 90000, days_ago=10)
    await Member.update({Member.status: MemberStatus.merged, Member.merged_into: m["A"]}).where(Member.id == m["F"])
    return {"hq": hq, "members": m, "vip": vip, "durian": durian, "stores": (s1, s2, s3)}


async def segment_of(client, hq, rules: dict) -> int:
    response = await client.post(f"{ADMIN}/segments", headers=hq, json={"name": "测试人群", "rules": rules})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def matching(client, hq, rules: dict) -> set[str]:
    segment_id = await segment_of(client, hq, rules)
    response = await client.get(f"{ADMIN}/segments/{segment_id}/members", headers=hq, params={"limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["items"]) and body["nextCursor"] is None
    return {item["memberId"] for item in body["items"]}


RULES = [
    ("tag", lambda s: {"tagIds": [s["vip"]]}, "ACE"),
    ("any-of-tags", lambda s: {"tagIds": [s["vip"], s["durian"]]}, "ABCE"),
    ("store", lambda s: {"storeIds": [s["stores"][0]]}, "ACE"),
    ("stores", lambda s: {"storeIds": [s["stores"][1], s["stores"][2]]}, "BD"),
    ("channel", lambda s: {"enrolledVia": "cashier"}, "ADE"),
    ("channels", lambda s: {"enrolledVia": ["miniprogram", "referral"]}, "BC"),
    ("min-spend-90-days", lambda s: {"minSpendFen": 40000}, "AC"),
    ("max-spend-counts-no-spend", lambda s: {"maxSpendFen": 10000}, "BDE"),
    ("spend-band", lambda s: {"minSpendFen": 40000, "maxSpendFen": 100000}, "A"),
    ("spend-in-window", lambda s: {"minSpendFen": 25000, "spendWindowDays": 30}, "AC"),
    ("spend-in-long-window", lambda s: {"minSpendFen": 5000, "spendWindowDays": 365}, "ABC"),
    ("came-recently", lambda s: {"lastPaidWithinDays": 30}, "AC"),
    ("not-back-in-60-days", lambda s: {"lastPaidBeforeDays": 60}, "B"),
    ("last-paid-between", lambda s: {"lastPaidWithinDays": 120, "lastPaidBeforeDays": 7}, "AB"),
    ("orders-ever", lambda s: {"minOrders": 2}, "A"),
    ("orders-ever-one", lambda s: {"minOrders": 1}, "ABC"),
    ("orders-in-window", lambda s: {"minOrders": 1, "spendWindowDays": 30}, "AC"),
    (
        "together",
        lambda s: {"tagIds": [s["vip"]], "storeIds": [s["stores"][0]], "lastPaidWithinDays": 30},
        "AC",
    ),
    ("nobody", lambda s: {"tagIds": [s["durian"]], "enrolledVia": "cashier"}, ""),
]


@pytest.mark.parametrize("rules, expected", [(r, e) for _, r, e in RULES], ids=[name for name, _, _ in RULES])
async def test_each_rule_matches_its_members(client, shoppers, rules, expected):
    members = shoppers["members"]
    assert await matching(client, shoppers["hq"], rules(shoppers)) == {members[name] for name in expected}


async def test_the_segment_answers_its_rules_as_kept(client, shoppers):
    hq = shoppers["hq"]
    rules = {"tagIds": [shoppers["durian"], shoppers["vip"], shoppers["vip"]], "enrolledVia": "cashier"}
    response = await client.post(f"{ADMIN}/segments", headers=hq, json={"name": "常客", "rules": rules})
    body = response.json()
    assert body["rules"] == {"tagIds": sorted([shoppers["vip"], shoppers["durian"]]), "enrolledVia": ["cashier"]}
    assert response.headers["location"] == f"/api/v1/admin/segments/{body['id']}"
    assert (await client.get(f"{ADMIN}/segments/{body['id']}", headers=hq)).json() == body
    listed = (await client.get(f"{ADMIN}/segments", headers=hq)).json()
    assert listed == {"items": [body], "nextCursor": None}
    found = await find_segment(body["id"])
    assert found is not None and found.rules.tag_ids == sorted([shoppers["vip"], shoppers["durian"]])


async def test_pages_cover_every_member_once_and_count_them_all(client, demo):
    hq = await staff_login(client, "hq")
    vip = await tag(client, hq, "VIP")
    ids = [await a_member(demo["S001"]) for _ in range(25)]
    for member_id in ids:
        await put_tags(member_id, vip)
    await a_member(demo["S001"])  # untagged: not in it
    segment_id = await segment_of(client, hq, {"tagIds": [vip]})
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        body = (await client.get(f"{ADMIN}/segments/{segment_id}/members", headers=hq, params=params)).json()
        assert body["count"] == 25
        seen += [item["memberId"] for item in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == sorted(ids, reverse=True)


async def test_the_csv_has_the_bom_and_every_member(client, shoppers):
    hq, members = shoppers["hq"], shoppers["members"]
    await Member.update({Member.nickname: "=HYPERLINK()"}).where(Member.id == members["E"])
    segment_id = await segment_of(client, hq, {"enrolledVia": "cashier"})
    response = await client.get(f"{ADMIN}/segments/{segment_id}/members", headers=hq, params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="segment-{segment_id}-members.csv"'
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "会员ID member id" and len(rows) == 4
    by_id = {int(row[0]): row for row in rows[1:]}
    assert list(by_id) == sorted([members["A"], members["D"], members["E"]], reverse=True)
    assert by_id[members["A"]][1:3] == ["阿明", ""]
    assert by_id[members["D"]][2:5] == ["138****8000", str(shoppers["stores"][2]), "cashier"]
    assert by_id[members["E"]][1] == "'=HYPERLINK()"  # text, never a formula


async def test_the_csv_streams_in_batches(client, demo, monkeypatch):
    monkeypatch.setattr("backend.membership.service.CSV_BATCH", 3)
    hq = await staff_login(client, "hq")
    ids = [await a_member(demo["S002"], via="miniprogram") for _ in range(7)]
    segment_id = await segment_of(client, hq, {"storeIds": [demo["S002"]]})
    response = await client.get(f"{ADMIN}/segments/{segment_id}/members?format=csv", headers=hq)
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [int(row[0]) for row in rows[1:]] == sorted(ids, reverse=True)


BAD_RULES = [
    ("no-rules", {}, 422, "segments.no_rules"),
    ("only-nulls", {"tagIds": None}, 422, "segments.no_rules"),
    ("tiers", {"tierCodes": ["gold"]}, 422, "segments.unknown_tier"),
    ("unknown-tag", {"tagIds": [999]}, 422, "segments.unknown_tags"),
    ("unknown-store", {"storeIds": [998, 999]}, 422, "segments.unknown_stores"),
    ("min-above-max", {"minSpendFen": 500, "maxSpendFen": 100}, 422, "segments.rules_conflict"),
    ("within-not-before", {"lastPaidWithinDays": 30, "lastPaidBeforeDays": 60}, 422, "segments.rules_conflict"),
    ("window-alone", {"spendWindowDays": 30}, 422, "segments.rule_incomplete"),
    ("negative-spend", {"minSpendFen": -1}, 422, "request.invalid"),
    ("zero-days", {"lastPaidWithinDays": 0}, 422, "request.invalid"),
    ("too-many-days", {"spendWindowDays": 3651, "minOrders": 1}, 422, "request.invalid"),
    ("zero-orders", {"minOrders": 0}, 422, "request.invalid"),
    ("float-spend", {"minSpendFen": 1.5}, 422, "request.invalid"),
    ("string-spend", {"minSpendFen": "100"}, 422, "request.invalid"),
    ("unknown-channel", {"enrolledVia": "wechat"}, 422, "request.invalid"),
    ("empty-tags", {"tagIds": []}, 422, "request.invalid"),
    ("unknown-rule", {"points": 5}, 422, "request.invalid"),
    ("bad-tier-code", {"tierCodes": ["金卡 gold"]}, 422, "request.invalid"),
]


@pytest.mark.parametrize("rules, status, code", [b[1:] for b in BAD_RULES], ids=[b[0] for b in BAD_RULES])
async def test_bad_rules_are_refused_and_nothing_is_written(client, demo, rules, status, code):
    hq = await staff_login(client, "hq")
    response = await client.post(f"{ADMIN}/segments", headers=hq, json={"name": "x", "rules": rules})
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    if code == "segments.unknown_stores":
        assert response.json()["details"] == {"storeIds": [998, 999]}
    if code == "segments.unknown_tier":
        assert response.json()["details"] == {"tierCodes": ["gold"]}
    assert await Segment.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"rules": {"minOrders": 1}},
        {"name": "", "rules": {"minOrders": 1}},
        {"name": "x"},
        {"name": "x", "rules": {}, "by": 1},
    ],
    ids=["no-name", "empty-name", "no-rules", "unknown-field"],
)
async def test_bad_segment_bodies_are_refused(client, demo, body):
    response = await client.post(f"{ADMIN}/segments", headers=await staff_login(client, "hq"), json=body)
    assert response.status_code == 422 and response.json()["code"] == "request.invalid"
    assert await Segment.count() == 0


async def test_segments_are_hqs(client, demo):
    hq = await staff_login(client, "hq")
    segment_id = await segment_of(client, hq, {"minOrders": 1})
    shopper = (await member_login(client, openid="oSegShopper000000000000001"))["headers"]
    for headers, status in (
        (await staff_login(client, "manager1"), 403),
        (await staff_login(client, "cashier1"), 403),
        (shopper, 403),
        ({}, 401),
    ):
        assert (await client.post(f"{ADMIN}/segments", headers=headers, json={})).status_code == status
        assert (await client.get(f"{ADMIN}/segments/{segment_id}/members", headers=headers)).status_code == status
        assert (await client.get(f"{ADMIN}/segments", headers=headers)).status_code == status
    missing = await client.get(f"{ADMIN}/segments/{segment_id + 1}/members", headers=hq)
    assert missing.status_code == 404 and missing.json()["code"] == "segments.not_found"
    bad = await client.get(f"{ADMIN}/segments/{segment_id}/members", headers=hq, params={"format": "xls"})
    assert bad.status_code == 422


async def test_the_sql_composes_for_other_domains(shoppers):
    """What the coupons domain builds on: the matching ids as a subquery, and spend per member."""
    members, now = shoppers["members"], utcnow()
    sql, args = members_matching(SegmentRules(tag_ids=[shoppers["vip"]], min_spend_fen=1), now=now)
    spend_sql, spend_args = spend_by_member(90, now=now)
    rows = await get_engine().run_querystring(
        QueryString(
            f'SELECT s."member", s."spend_fen" FROM ({spend_sql}) s WHERE s."member" IN ({sql}) ORDER BY s."member"',
            *spend_args,
            *args,
        )
    )
    assert [dict(row) for row in rows] == [
        {"member": members["A"], "spend_fen": 50000},
        {"member": members["C"], "spend_fen": 150000},
    ]
