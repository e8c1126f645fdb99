"""HQ finds members by what staff have in hand, reads a member's page and the chain's orders; store managers see
their stores' rows only, cashiers none."""

import csv
import io
import time
from datetime import timedelta

import pytest

from backend.core.clock import business_day, utcnow
from backend.orders.tables import Order
from tests.cashier.test_till_checkout import FAST, payment_code, scan
from tests.conftest import member_login, staff_login
from tests.members.test_merge import phone_code


@pytest.fixture
async def till(make_client):
    async with make_client(**FAST) as client:
        yield client


async def checkout(till, demo, cashier: str, store: str, openid: str, key: str, amount: int = 5000) -> dict:
    headers = await staff_login(till, cashier)
    response = await scan(till, headers, demo[store], await payment_code(till, openid), key, amount=amount)
    assert response.status_code == 201, response.text
    return response.json()


async def test_hq_finds_a_member_by_phone_member_code_id_and_nickname(till, demo):
    shopper = await member_login(till, openid="oHqSearch00000000000000001")
    bound = await till.post(
        "/api/v1/me/phone", headers=shopper["headers"], json={"code": await phone_code(till, "13812345678")}
    )
    assert bound.status_code == 200, bound.text
    await till.patch("/api/v1/me", headers=shopper["headers"], json={"nickname": "榴莲控小王"})
    member_id = shopper["member"]["id"]
    hq = await staff_login(till, "hq")

    async def search(q: str) -> dict:
        response = await till.get("/api/v1/admin/members", headers=hq, params={"q": q})
        assert response.status_code == 200, response.text
        return response.json()

    ways = (("13812345678", "phone"), ("+86 138 1234 5678", "phone"), (str(member_id), "id"), ("小王", "nickname"))
    for q, by in ways:
        found = await search(q)
        assert found["matchedBy"] == by and [m["id"] for m in found["items"]] == [member_id], q
        assert found["items"][0]["phoneMasked"] == "138****5678"
    code = (await till.get("/api/v1/me/member-code", headers=shopper["headers"])).json()["code"]
    found = await search(code)
    assert found["matchedBy"] == "member_code" and [m["id"] for m in found["items"]] == [member_id]
    # Read, not spent: the till can still look the member up with the same code.
    till_lookup = await till.post(
        "/api/v1/cashier/member-lookups",
        headers=await staff_login(till, "cashier1"),
        json={"memberCode": code, "storeId": demo["S001"], "tillId": "T1"},
    )
    assert till_lookup.status_code == 200, till_lookup.text
    assert (await search("13800000000"))["items"] == []  # nobody holds that phone
    assert (await search("89" + "0" * 16))["items"] == []  # a code that names nobody now


async def test_a_members_page_shows_what_staff_need_masked(till, demo):
    openid = "oHqPage000000000000000001"
    order = await checkout(till, demo, "cashier1", "S001", openid, "hq-page-1")
    member_id = order["memberId"]
    hq = await staff_login(till, "hq")
    tag = await till.post("/api/v1/admin/tags", headers=hq, json={"name": "爱吃榴莲", "group": "口味偏好"})
    await till.post(f"/api/v1/admin/members/{member_id}/tags", headers=hq, json={"tagIds": [tag.json()["id"]]})
    response = await till.get(f"/api/v1/admin/members/{member_id}", headers=hq)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["member"]["id"] == member_id and page["member"]["enrolledVia"] == "cashier"
    assert page["points"]["balance"] == order["pointsEarned"] == 100  # 2 points a yuan
    assert [lot["remaining"] for lot in page["points"]["lots"]] == [100]
    assert [o["id"] for o in page["recentOrders"]] == [order["id"]]
    assert [t["name"] for t in page["tags"]] == ["爱吃榴莲"]
    assert page["membership"]["growth"] == 5000
    (identity,) = page["identities"]
    assert identity["kind"] == "wechat_openid" and openid not in identity["masked"] and "****" in identity["masked"]
    assert (await till.get("/api/v1/admin/members/999999", headers=hq)).status_code == 404


async def test_a_store_manager_sees_their_stores_rows_and_a_cashier_none(till, demo):
    ours = await checkout(till, demo, "cashier1", "S001", "oHqScope00000000000000001", "hq-scope-1")
    theirs = await checkout(till, demo, "cashier2", "S002", "oHqScope00000000000000002", "hq-scope-2")
    manager = await staff_login(till, "manager1")
    members = (await till.get("/api/v1/admin/members", headers=manager)).json()["items"]
    assert [m["id"] for m in members] == [ours["memberId"]]
    assert (await till.get(f"/api/v1/admin/members/{ours['memberId']}", headers=manager)).status_code == 200
    other = await till.get(f"/api/v1/admin/members/{theirs['memberId']}", headers=manager)
    assert other.status_code == 404 and other.json()["code"] == "members.not_found"
    orders = (await till.get("/api/v1/admin/orders", headers=manager)).json()["items"]
    assert [o["id"] for o in orders] == [ours["id"]]
    for path in ("/api/v1/admin/orders", "/api/v1/admin/members"):
        elsewhere = await till.get(path, headers=manager, params={"storeId": demo["S002"]})
        assert elsewhere.status_code == 404, path
    report = await till.get("/api/v1/admin/reports/stores", headers=manager)
    assert {row["storeId"] for row in report.json()["rows"]} == {demo["S001"]}
    staff = (await till.get("/api/v1/admin/staff", headers=manager)).json()["items"]
    assert {s["username"] for s in staff} == {"manager1", "cashier1"}
    cashier = await staff_login(till, "cashier1")
    reads = ("/api/v1/admin/members", "/api/v1/admin/orders", "/api/v1/admin/reports/stores", "/api/v1/admin/staff")
    for path in reads:
        refused = await till.get(path, headers=cashier)
        assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden", path
    assert (await till.get("/api/v1/admin/audit", headers=manager)).status_code == 403
    shopper = await member_login(till, openid="oHqScope00000000000000003")
    assert (await till.get("/api/v1/admin/orders", headers=shopper["headers"])).status_code == 403


async def test_yesterdays_orders_come_as_a_spreadsheet(till, demo):
    first = await checkout(till, demo, "cashier1", "S001", "oHqCsv000000000000000001", "hq-csv-1", amount=1200)
    second = await checkout(till, demo, "cashier2", "S002", "oHqCsv000000000000000002", "hq-csv-2", amount=3400)
    today = await checkout(till, demo, "cashier1", "S001", "oHqCsv000000000000000003", "hq-csv-3", amount=5600)
    yesterday = utcnow() - timedelta(days=1)
    await Order.update({Order.created_at: yesterday}).where(Order.id.is_in([first["id"], second["id"]]))
    hq = await staff_login(till, "hq")
    day = business_day(yesterday).isoformat()
    response = await till.get("/api/v1/admin/orders", headers=hq, params={"from": day, "to": day, "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [int(row[0]) for row in rows[1:]] == [second["id"], first["id"]]
    assert [int(row[8]) for row in rows[1:]] == [3400, 1200]  # paid fen
    assert today["id"] not in [int(row[0]) for row in rows[1:]]
    page = await till.get("/api/v1/admin/orders", headers=hq, params={"from": day, "to": day, "kind": "till"})
    assert [o["id"] for o in page.json()["items"]] == [second["id"], first["id"]]
    by_store = await till.get("/api/v1/admin/orders", headers=hq, params={"storeId": demo["S002"]})
    assert [o["id"] for o in by_store.json()["items"]] == [second["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-13-01"},
        {"from": "yesterday"},
        {"to": "2026-02-30"},
        {"to": "9999-12-31"},  # a day whose end no moment can name
        {"from": "0001-01-01T00:00:00+14:00"},
        {"status": "lost"},
        {"cursor": "-1"},
    ],
)
async def test_bad_order_filters_are_422(client, demo, params):
    response = await client.get("/api/v1/admin/orders", headers=await staff_login(client, "hq"), params=params)
    assert response.status_code == 422 and response.json()["code"] == "request.invalid", response.text


async def test_a_search_word_with_control_characters_is_422(client, demo):
    response = await client.get("/api/v1/admin/members", headers=await staff_login(client, "hq"), params={"q": "a\x00"})
    assert response.status_code == 422 and response.json()["code"] == "request.invalid"


def test_a_member_code_names_its_member_only_while_it_is_current():
    from backend.hq.service import read_search
    from backend.members.code import MemberCodes

    codes = MemberCodes("secret")
    now = time.time()
    code = codes.code_for(42, now=now)[0]
    assert read_search(code, codes=codes, now=now).member_id == 42
    assert read_search(code, codes=codes, now=now + 600).member_id == 0  # a code from ten minutes ago names nobody
