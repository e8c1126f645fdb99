"""HQ runs its chain: staff deactivated, re-roled and reset; stores edited; campaigns of every kind closed early;
every HQ or store-manager write in the audit trail with its before and after."""

import asyncio

import pytest

from backend.app import create_app
from backend.audit.tables import AuditEntry
from backend.core.db import get_engine
from backend.groupbuy.tables import Group
from tests.catalogue.test_browsing import photo
from tests.catalogue.test_catalogue import product_body
from tests.conftest import PASSWORD, member_login, staff_login
from tests.coupons.helpers import campaign as coupon_campaign
from tests.coupons.helpers import template as coupon_template
from tests.groupbuy.test_seats import join, new_campaign, open_group, shoppers
from tests.referrals.test_referrals import new_campaign as new_referral_campaign

ADMIN = "/api/v1/admin"


async def audit_of(client, hq, **params) -> list[dict]:
    response = await client.get(f"{ADMIN}/audit", headers=hq, params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_deactivating_cashier2_stops_their_next_request(client, demo):
    cashier2 = await staff_login(client, "cashier2")
    assert (await client.get("/api/v1/cashier/me", headers=cashier2)).status_code == 200
    hq = await staff_login(client, "hq")
    response = await client.patch(f"{ADMIN}/staff/{demo['cashier2']}", headers=hq, json={"active": False})
    assert response.status_code == 200 and response.json()["active"] is False
    refused = await client.get("/api/v1/cashier/me", headers=cashier2)
    assert refused.status_code == 401 and refused.json()["code"] == "auth.unauthenticated"
    login = await client.post("/api/v1/auth/staff/login", json={"username": "cashier2", "password": PASSWORD})
    assert login.status_code == 401
    entry = (await audit_of(client, hq, entity="staff", entityId=str(demo["cashier2"])))[0]
    assert entry["action"] == "staff.update" and entry["actorUsername"] == "hq" and entry["actorRole"] == "hq_admin"
    assert entry["changes"] == {"active": [True, False]} and entry["client"]
    # Active again, they sign in anew; the token from before stays ended.
    await client.patch(f"{ADMIN}/staff/{demo['cashier2']}", headers=hq, json={"active": True})
    assert (await client.get("/api/v1/cashier/me", headers=cashier2)).status_code == 401
    assert (await client.get("/api/v1/cashier/me", headers=await staff_login(client, "cashier2"))).status_code == 200


async def test_a_password_reset_ends_every_session_and_the_new_password_works(client, demo):
    before = await staff_login(client, "cashier1")
    hq = await staff_login(client, "hq")
    reset = await client.patch(f"{ADMIN}/staff/{demo['cashier1']}", headers=hq, json={"password": "a-new-secret-1"})
    assert reset.status_code == 200, reset.text
    assert (await client.get("/api/v1/cashier/me", headers=before)).status_code == 401
    old = await client.post("/api/v1/auth/staff/login", json={"username": "cashier1", "password": PASSWORD})
    new = await client.post("/api/v1/auth/staff/login", json={"username": "cashier1", "password": "a-new-secret-1"})
    assert (old.status_code, new.status_code) == (401, 200)
    entry = (await audit_of(client, hq, entity="staff", entityId=str(demo["cashier1"])))[0]
    assert entry["changes"] == {"password": [None, "(reset)"]}  # never the password itself


async def test_hq_re_roles_and_re_scopes_staff_and_cannot_lock_itself_out(client, demo):
    hq = await staff_login(client, "hq")
    moved = await client.patch(
        f"{ADMIN}/staff/{demo['cashier1']}", headers=hq, json={"role": "store_manager", "storeIds": [demo["S003"]]}
    )
    assert moved.status_code == 200 and (moved.json()["role"], moved.json()["storeIds"]) == (
        "store_manager",
        [demo["S003"]],
    )
    cashier1 = await staff_login(client, "cashier1")
    assert (await client.get(f"/api/v1/cashier/stores/{demo['S001']}", headers=cashier1)).status_code == 404
    assert (await client.get(f"/api/v1/cashier/stores/{demo['S003']}", headers=cashier1)).status_code == 200
    entry = (await audit_of(client, hq, entity="staff", entityId=str(demo["cashier1"])))[0]
    assert entry["changes"] == {"role": ["cashier", "store_manager"], "store_ids": [[demo["S001"]], [demo["S003"]]]}
    for body in ({"active": False}, {"role": "cashier", "storeIds": [demo["S001"]]}):
        refused = await client.patch(f"{ADMIN}/staff/{demo['hq']}", headers=hq, json=body)
        assert refused.status_code == 409 and refused.json()["code"] == "staff.cannot_change_self"
    bad = [
        ({"storeIds": [999_999]}, 422, "staff.unknown_store"),
        ({"role": "cashier", "storeIds": []}, 422, "staff.stores_required"),
        ({"password": "short"}, 422, "request.invalid"),
        ({"role": "owner"}, 422, "request.invalid"),
    ]
    for body, status, code in bad:
        response = await client.patch(f"{ADMIN}/staff/{demo['cashier2']}", headers=hq, json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), body
    assert (await client.patch(f"{ADMIN}/staff/999999", headers=hq, json={"active": False})).status_code == 404
    manager = await staff_login(client, "manager1")
    refused = await client.patch(f"{ADMIN}/staff/{demo['cashier1']}", headers=manager, json={"active": False})
    assert refused.status_code == 403
    untouched = await audit_of(client, hq, entity="staff", entityId=str(demo["cashier2"]))
    assert [e["action"] for e in untouched] == ["staff.create"]  # nothing refused was recorded


async def test_hq_edits_and_deactivates_a_store(client, demo):
    hq = await staff_login(client, "hq")
    edited = await client.patch(
        f"{ADMIN}/stores/{demo['S002']}", headers=hq, json={"name": "二号店 Store 2", "openingHours": "08:00-22:00"}
    )
    assert edited.status_code == 200 and edited.json()["name"] == "二号店 Store 2"
    closed = await client.patch(f"{ADMIN}/stores/{demo['S002']}", headers=hq, json={"active": False})
    assert closed.status_code == 200 and closed.json()["active"] is False
    listed = [s["code"] for s in (await client.get("/api/v1/stores")).json()]
    assert "S002" not in listed and "S001" in listed
    everything = (await client.get(f"{ADMIN}/stores", headers=hq)).json()
    assert {s["code"]: s["active"] for s in everything}["S002"] is False
    entries = await audit_of(client, hq, entity="store", entityId=str(demo["S002"]))
    assert [e["changes"] for e in entries[:2]] == [
        {"active": [True, False]},
        {"name": ["Store S002", "二号店 Store 2"], "opening_hours": ["", "08:00-22:00"]},
    ]
    far = await client.patch(f"{ADMIN}/stores/{demo['S001']}", headers=hq, json={"deliveryRadiusM": 3000})
    assert far.status_code == 422 and far.json()["code"] == "stores.delivery_needs_location"
    assert (await client.patch(f"{ADMIN}/stores/999999", headers=hq, json={"name": "x"})).status_code == 404


async def test_closing_a_group_buy_campaign_stops_new_groups_and_lets_forming_ones_fill(client, demo):
    campaign = await new_campaign(client, demo)
    leader, friend, late = await shoppers(client, 3, prefix="oHqClose")
    opened = await open_group(client, leader, campaign["id"], demo["S001"])
    assert opened.status_code == 201, opened.text
    group_id = opened.json()["group"]["id"]
    hq = await staff_login(client, "hq")
    closed = await client.patch(f"{ADMIN}/groupbuy/campaigns/{campaign['id']}", headers=hq, json={"closed": True})
    assert closed.status_code == 200 and closed.json()["closedAt"] is not None
    assert closed.json()["counts"]["groupsForming"] == 1
    refused = await open_group(client, late, campaign["id"], demo["S001"])
    assert refused.status_code == 409 and refused.json()["code"] == "groupbuy.campaign_closed"
    joined = await join(client, friend, group_id, demo["S001"])
    assert joined.status_code == 201, joined.text
    assert await Group.count().where(Group.campaign == campaign["id"]) == 1
    listed = (await client.get(f"{ADMIN}/groupbuy/campaigns", headers=hq)).json()["items"]
    assert [(c["id"], c["closedAt"] is not None) for c in listed] == [(campaign["id"], True)]
    entry = (await audit_of(client, hq, entity="groupbuy_campaign", entityId=str(campaign["id"])))[0]
    assert entry["action"] == "groupbuy_campaign.close" and entry["changes"]["closed_at"][0] is None


async def test_closing_referral_and_coupon_campaigns_ends_them_now(client, demo):
    hq = await staff_login(client, "hq")
    referral = await new_referral_campaign(client)
    closed = await client.patch(f"{ADMIN}/referral-campaigns/{referral['id']}", headers=hq, json={"closed": True})
    assert closed.status_code == 200 and closed.json()["closedAt"] is not None, closed.text
    sharer = await member_login(client, openid="oHqReferralClose0000000001")
    share = await client.post("/api/v1/me/share-links", headers=sharer["headers"], json={"campaignId": referral["id"]})
    assert share.status_code == 409, share.text
    again = await client.patch(f"{ADMIN}/referral-campaigns/{referral['id']}", headers=hq, json={"title": "再来"})
    assert again.status_code == 422
    template = await coupon_template(client, hq)
    claim = await coupon_campaign(client, template["id"], "claim", hq)
    shut = await client.patch(f"{ADMIN}/coupon-campaigns/{claim['id']}", headers=hq, json={"closed": True})
    assert shut.status_code == 200 and shut.json()["closedAt"] is not None
    late = await client.post(f"/api/v1/coupon-campaigns/{claim['id']}/claims", headers=sharer["headers"])
    assert late.status_code == 409, late.text
    listed = (await client.get(f"{ADMIN}/referral-campaigns", headers=hq)).json()["items"]
    assert listed[0]["counts"] == {"shareLinks": 0, "referrals": 0, "qualified": 0, "pointsReleased": 0}
    low = await client.patch(f"{ADMIN}/coupon-campaigns/{claim['id']}", headers=hq, json={"budgetFen": 1})
    assert low.status_code == 422


async def test_the_audit_trail_is_append_only(client, demo):
    hq = await staff_login(client, "hq")
    await client.patch(f"{ADMIN}/stores/{demo['S003']}", headers=hq, json={"name": "三号店"})
    with pytest.raises(Exception, match="never changed"):
        await get_engine().run_ddl('UPDATE "audit_entry" SET "action" = \'nothing\'')
    actions = [row["action"] for row in await AuditEntry.select(AuditEntry.action).order_by(AuditEntry.id)]
    assert actions[-1] == "store.update" and "nothing" not in actions


def admin_writes() -> set[str]:
    app = create_app(build_document=False)
    return {
        f"{method} {route.path}"
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method in ("POST", "PUT", "PATCH", "DELETE") and route.path.startswith(ADMIN)
    }


async def test_every_hq_write_is_in_the_audit_trail(client, demo):
    """Each HQ write endpoint, called once, leaves its entry; the list of endpoints is the app's own, so a new one
    without an entry fails here."""
    hq = await staff_login(client, "hq")
    member = (await member_login(client, openid="oHqAudit000000000000000001"))["member"]["id"]
    other = (await member_login(client, openid="oHqAudit000000000000000002"))["member"]["id"]
    made: dict[str, int] = {}

    async def call(method: str, path: str, **kwargs) -> dict:
        response = await client.request(method, f"{ADMIN}{path}", headers={**hq, **kwargs.pop("headers", {})}, **kwargs)
        assert response.status_code < 300, (method, path, response.text)
        return response.json() if response.content else {}

    async def categories():
        made["category"] = (await call("POST", "/categories", json={"name": "水果"}))["id"]

    async def products():
        made["product"] = (await call("POST", "/products", json=product_body(categoryId=made["category"])))["id"]

    async def product_patch():
        await call("PATCH", f"/products/{made['product']}", json={"title": "猫山王榴莲 特级"})

    async def image():
        await call("POST", "/product-images", headers={"Content-Type": "image/png"}, content=photo(400, 300))

    async def inventory():
        product = (await client.get(f"/api/v1/products/{made['product']}")).json()
        items = [{"skuId": sku["id"], "onHand": 10} for sku in product["skus"]]
        await call("PUT", f"/stores/{demo['S001']}/inventory", json={"items": items})

    async def template():
        made["template"] = (await coupon_template(client, hq))["id"]

    async def coupon_campaign_create():
        made["coupon_campaign"] = (await coupon_campaign(client, made["template"], "manual", hq))["id"]

    async def coupon_issue():
        await call(
            "POST", f"/coupon-campaigns/{made['coupon_campaign']}/issues", json={"idempotencyKey": "hq-issue-0001"}
        )

    async def coupon_patch():
        await call("PATCH", f"/coupon-campaigns/{made['coupon_campaign']}", json={"closed": True})

    async def store_create():
        made["store"] = (await call("POST", "/stores", json={"code": "S009", "name": "九号店"}))["id"]

    async def store_patch():
        await call("PATCH", f"/stores/{made['store']}", json={"address": "人民路 9 号"})

    async def staff_create():
        body = {"username": "cashier9", "password": PASSWORD, "role": "cashier", "storeIds": [made["store"]]}
        made["staff"] = (await call("POST", "/staff", json=body))["id"]

    async def staff_patch():
        await call("PATCH", f"/staff/{made['staff']}", json={"displayName": "小九"})

    async def tag():
        made["tag"] = (await call("POST", "/tags", json={"name": "常客"}))["id"]

    async def tag_member():
        await call("POST", f"/members/{member}/tags", json={"tagIds": [made["tag"]]})

    async def untag_member():
        await call("DELETE", f"/members/{member}/tags/{made['tag']}")

    async def segment():
        await call("POST", "/segments", json={"name": "常客", "rules": {"tagIds": [made["tag"]]}})

    async def tiers():
        ladder = [{"code": "silver", "name": "银卡", "minGrowth": 0}, {"code": "gold", "name": "金", "minGrowth": 100}]
        await call("PUT", "/tiers", json={"tiers": ladder})

    async def plan():
        body = {"code": "PLUS", "title": "心享会员", "priceFen": 1000, "days": 30}
        await call("POST", "/membership-plans", json=body)

    async def adjust():
        body = {"delta": 50, "reason": "goodwill", "idempotencyKey": "hq-adjust-1"}
        await call("POST", f"/members/{member}/points-adjustments", json=body)

    async def merge():
        await call("POST", "/members/merge", json={"survivorId": member, "mergedId": other})

    async def groupbuy_create():
        made["groupbuy"] = (await new_campaign(client, demo))["id"]

    async def groupbuy_patch():
        await call("PATCH", f"/groupbuy/campaigns/{made['groupbuy']}", json={"title": "周末拼团"})

    async def referral_create():
        made["referral"] = (await new_referral_campaign(client))["id"]

    async def referral_patch():
        await call("PATCH", f"/referral-campaigns/{made['referral']}", json={"dailyCapPerReferrer": 3})

    writes = {
        "POST /api/v1/admin/categories": (categories, "category.create"),
        "POST /api/v1/admin/products": (products, "product.create"),
        "PATCH /api/v1/admin/products/{product_id:int}": (product_patch, "product.update"),
        "POST /api/v1/admin/product-images": (image, "product_image.upload"),
        "PUT /api/v1/admin/stores/{store_id:int}/inventory": (inventory, "inventory.put"),
        "POST /api/v1/admin/coupon-templates": (template, "coupon_template.create"),
        "POST /api/v1/admin/coupon-campaigns": (coupon_campaign_create, "coupon_campaign.create"),
        "POST /api/v1/admin/coupon-campaigns/{campaign_id:int}/issues": (coupon_issue, "coupon_campaign.issue"),
        "PATCH /api/v1/admin/coupon-campaigns/{campaign_id:int}": (coupon_patch, "coupon_campaign.close"),
        "POST /api/v1/admin/stores": (store_create, "store.create"),
        "PATCH /api/v1/admin/stores/{store_id:int}": (store_patch, "store.update"),
        "POST /api/v1/admin/staff": (staff_create, "staff.create"),
        "PATCH /api/v1/admin/staff/{staff_id:int}": (staff_patch, "staff.update"),
        "POST /api/v1/admin/tags": (tag, "tag.create"),
        "POST /api/v1/admin/members/{member_id:int}/tags": (tag_member, "member.tag"),
        "DELETE /api/v1/admin/members/{member_id:int}/tags/{tag_id:int}": (untag_member, "member.untag"),
        "POST /api/v1/admin/segments": (segment, "segment.create"),
        "PUT /api/v1/admin/tiers": (tiers, "tiers.set"),
        "POST /api/v1/admin/membership-plans": (plan, "membership_plan.create"),
        "POST /api/v1/admin/members/{member_id:int}/points-adjustments": (adjust, "points.adjust"),
        "POST /api/v1/admin/members/merge": (merge, "member.merge"),
        "POST /api/v1/admin/groupbuy/campaigns": (groupbuy_create, "groupbuy_campaign.create"),
        "PATCH /api/v1/admin/groupbuy/campaigns/{campaign_id:int}": (groupbuy_patch, "groupbuy_campaign.update"),
        "POST /api/v1/admin/referral-campaigns": (referral_create, "referral_campaign.create"),
        "PATCH /api/v1/admin/referral-campaigns/{campaign_id:int}": (referral_patch, "referral_campaign.update"),
    }
    assert set(writes) == admin_writes(), "every HQ write endpoint is called here"
    for route, (write, action) in writes.items():
        before = await AuditEntry.count()
        await write()
        entries = await AuditEntry.select().where(AuditEntry.id > 0).order_by(AuditEntry.id, ascending=False)
        assert await AuditEntry.count() == before + 1, route
        assert (entries[0]["action"], entries[0]["actor_username"]) == (action, "hq"), route
        assert entries[0]["changes"] not in ("", "{}"), route


async def test_a_store_managers_writes_are_audited_as_theirs(client, demo):
    hq = await staff_login(client, "hq")
    tag = (await client.post(f"{ADMIN}/tags", headers=hq, json={"name": "熟客"})).json()["id"]
    shopper = await member_login(client, openid="oHqManagerAudit00000000001")
    from backend.members.tables import Member

    await Member.update({Member.enrolled_store: demo["S001"]}).where(Member.id == shopper["member"]["id"])
    manager = await staff_login(client, "manager1")
    tagged = await client.post(
        f"{ADMIN}/members/{shopper['member']['id']}/tags", headers=manager, json={"tagIds": [tag]}
    )
    assert tagged.status_code == 200, tagged.text
    (entry,) = await audit_of(client, hq, actor=str(demo["manager1"]))
    assert (entry["action"], entry["actorRole"], entry["changes"]) == (
        "member.tag",
        "store_manager",
        {"tag_ids": [[], [tag]]},
    )


async def test_concurrent_edits_of_one_staff_account_each_leave_an_entry(client, demo):
    hq = await staff_login(client, "hq")
    names = [f"收银员{i}" for i in range(5)]
    answers = await asyncio.gather(
        *(client.patch(f"{ADMIN}/staff/{demo['cashier1']}", headers=hq, json={"displayName": n}) for n in names)
    )
    assert all(answer.status_code == 200 for answer in answers)
    entries = (await audit_of(client, hq, entity="staff", entityId=str(demo["cashier1"])))[:-1]  # not its creation
    # Each change read what the one before it wrote: the befores and afters chain with no gap.
    chain = [entry["changes"]["display_name"] for entry in reversed(entries)]
    assert len(chain) == len(names)
    assert chain[0][0] == "" and all(earlier[1] == later[0] for earlier, later in zip(chain, chain[1:], strict=False))
