"""The ledger over HTTP: the shopper's balance and entries, HQ's adjustments and liability report."""

import asyncio
from datetime import datetime, timedelta

import pytest

from backend.core.clock import utcnow
from backend.points import service
from backend.points.tables import PointsEntry, PointsLot
from tests.conftest import member_login, staff_login

ADJUST = "/api/v1/admin/members/{}/points-adjustments"


async def earn(member_id: int, points: int, key: str, *, store_id: int | None = None, now=None):
    return await service.earn(
        member_id, points, store_id=store_id, source_type="order", source_id=key, idempotency_key=f"{key}:earn", now=now
    )


async def test_my_points_show_balance_and_what_expires_soon(client, demo):
    shopper = await member_login(client)
    member_id = shopper["member"]["id"]
    await earn(member_id, 120, "o1", store_id=demo["S001"])
    then = utcnow() - timedelta(days=340)
    await earn(member_id, 80, "o2", now=then)  # its lot expires within weeks...
    await earn(member_id, 15, "o3", now=then)  # ...on the same day as this one: one line for both
    await earn(member_id, 10, "o4", now=then - timedelta(days=1))  # spent (the soonest first): not listed
    await service.redeem(member_id, 10, store_id=None, source_type="order", source_id="o5", idempotency_key="o5:r")
    response = await client.get("/api/v1/me/points", headers=shopper["headers"])
    assert response.status_code == 200
    body = response.json()
    assert (body["balance"], body["debt"]) == (215, 0)
    lot = await PointsLot.select(PointsLot.expires_at).where(PointsLot.points == 80).first()
    assert [(e["points"], datetime.fromisoformat(e["expiresAt"])) for e in body["expiring"]] == [
        (95, lot["expires_at"])
    ]
    assert (await client.get("/api/v1/me", headers=shopper["headers"])).json()["pointsBalance"] == 215


async def test_entries_are_cursor_paged_newest_first(client):
    shopper = await member_login(client)
    for i in range(25):
        await earn(shopper["member"]["id"], i + 1, f"p{i}")
    seen, cursor = [], None
    for expected in (10, 10, 5):
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/me/points/entries", params=params, headers=shopper["headers"])).json()
        assert len(page["items"]) == expected
        seen += [item["delta"] for item in page["items"]]
        cursor = page["nextCursor"]
    assert cursor is None
    assert seen == list(range(25, 0, -1))
    for params in ({"limit": 0}, {"limit": 101}, {"cursor": "abc"}, {"limit": "ten"}):
        response = await client.get("/api/v1/me/points/entries", params=params, headers=shopper["headers"])
        assert response.status_code == 422 and response.json()["code"] == "request.invalid"


async def test_another_members_entries_are_not_visible(client):
    first, second = await member_login(client), await member_login(client)
    await earn(first["member"]["id"], 10, "mine")
    page = (await client.get("/api/v1/me/points/entries", headers=second["headers"])).json()
    assert page == {"items": [], "nextCursor": None}


async def test_hq_adjusts_once_per_key(client, demo):
    hq = await staff_login(client, "hq")
    member_id = (await member_login(client))["member"]["id"]
    body = {"delta": 50, "reason": "goodwill", "idempotencyKey": "adj-0001"}
    first = await client.post(ADJUST.format(member_id), json=body, headers=hq)
    assert first.status_code == 201, first.text
    assert first.json()["balance"] == 50 and first.json()["kind"] == "adjust"
    assert first.json()["entryId"] == (await PointsEntry.select(PointsEntry.id).first())["id"]
    again = await client.post(ADJUST.format(member_id), json=body, headers=hq)
    assert again.status_code == 200 and again.json() == first.json()  # a replay: no new entry
    changed = await client.post(ADJUST.format(member_id), json={**body, "delta": 60}, headers=hq)
    assert changed.status_code == 409 and changed.json()["code"] == "points.idempotency_conflict"
    assert await PointsEntry.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"delta": -51, "reason": "too much", "idempotencyKey": "adj-0002"}, 409, "points.insufficient"),
        ({"delta": 0, "reason": "nothing", "idempotencyKey": "adj-0003"}, 422, "points.zero_adjustment"),
        ({"delta": 5, "reason": "x", "idempotencyKey": "adj-0004"}, 422, "request.invalid"),
        ({"delta": 5, "reason": "short key", "idempotencyKey": "k"}, 422, "request.invalid"),
        ({"delta": 5.5, "reason": "float", "idempotencyKey": "adj-0005"}, 422, "request.invalid"),
        ({"delta": 5, "reason": "extra", "idempotencyKey": "adj-0006", "balance": 9}, 422, "request.invalid"),
    ],
)
async def test_bad_adjustments_change_nothing(client, demo, body, status, code):
    hq = await staff_login(client, "hq")
    member_id = (await member_login(client))["member"]["id"]
    await service.adjust(member_id, 50, reason="start", idempotency_key="adj-start")
    response = await client.post(ADJUST.format(member_id), json=body, headers=hq)
    assert response.status_code == status and response.json()["code"] == code
    assert await PointsEntry.count() == 1
    assert await service.balance_of(member_id) == (50, 0)


async def test_adjustments_need_hq_and_a_real_member(client, demo):
    member = await member_login(client)
    body = {"delta": 5, "reason": "goodwill", "idempotencyKey": "adj-0007"}
    for headers in (await staff_login(client, "cashier1"), await staff_login(client, "manager1"), member["headers"]):
        assert (await client.post(ADJUST.format(member["member"]["id"]), json=body, headers=headers)).status_code == 403
    missing = await client.post(ADJUST.format(999999), json=body, headers=await staff_login(client, "hq"))
    assert missing.status_code == 404
    assert await PointsEntry.count() == 0


async def test_a_hundred_concurrent_debits_of_ten_against_five_hundred(client, demo):
    hq = await staff_login(client, "hq")
    member_id = (await member_login(client))["member"]["id"]
    await service.adjust(member_id, 500, reason="start", idempotency_key="adj-start")
    responses = await asyncio.gather(
        *(
            client.post(
                ADJUST.format(member_id),
                headers=hq,
                json={"delta": -10, "reason": "spend", "idempotencyKey": f"spend-{i:04d}"},
            )
            for i in range(100)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 50 + [409] * 50
    assert await service.balance_of(member_id) == (0, 0)
    assert min(r.json()["balance"] for r in responses if r.status_code == 201) == 0


async def test_a_hundred_concurrent_redemptions_of_ten_against_five_hundred():
    from backend.core.db import insert_row
    from backend.members.tables import Member
    from backend.points.errors import InsufficientPoints

    member_id = await insert_row(Member, enrolled_via="cashier")
    await earn(member_id, 500, "start")

    async def redeem(i: int):
        return await service.redeem(
            member_id, 10, store_id=None, source_type="order", source_id=f"r{i}", idempotency_key=f"r{i}:redeem"
        )

    results = await asyncio.gather(*(redeem(i) for i in range(100)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 50
    assert all(isinstance(r, InsufficientPoints) for r in results if isinstance(r, Exception))
    assert await service.balance_of(member_id) == (0, 0)
    assert await PointsLot.select(PointsLot.remaining).where(PointsLot.member == member_id) == [{"remaining": 0}]


async def test_concurrent_replays_of_one_key_post_once():
    from backend.core.db import insert_row
    from backend.members.tables import Member

    member_id = await insert_row(Member, enrolled_via="cashier")
    results = await asyncio.gather(*(earn(member_id, 30, "same") for _ in range(20)))
    assert len({r.entry_id for r in results}) == 1
    assert await PointsEntry.count() == 1 and await service.balance_of(member_id) == (30, 0)


async def test_liability_per_store(client, demo):
    member_id = (await member_login(client))["member"]["id"]
    await earn(member_id, 100, "a", store_id=demo["S001"])
    await earn(member_id, 50, "b", store_id=demo["S002"])
    await service.redeem(
        member_id, 30, store_id=demo["S002"], source_type="order", source_id="c", idempotency_key="c:redeem"
    )
    await earn(member_id, 40, "old", store_id=demo["S003"], now=utcnow() - timedelta(days=800))
    await service.expire_due()
    await service.adjust(member_id, 5, reason="goodwill", idempotency_key="adj-goodwill")
    response = await client.get("/api/v1/admin/reports/points-liability", headers=await staff_login(client, "hq"))
    assert response.status_code == 200
    body = response.json()
    by_code = {row["storeCode"]: row for row in body["stores"]}
    # The redemption took the soonest-expiring lot first: S001's and S002's expire together, S001's is older.
    assert by_code["S001"] == {
        "storeId": demo["S001"],
        "storeCode": "S001",
        "earned": 100,
        "redeemed": 0,
        "expired": 0,
        "reversed": 0,
        "adjusted": 0,
        "outstanding": 70,
    }
    assert by_code["S002"]["redeemed"] == 30 and by_code["S002"]["outstanding"] == 50
    assert by_code["S003"]["expired"] == 40 and by_code["S003"]["outstanding"] == 0
    assert by_code[None]["adjusted"] == 5 and by_code[None]["outstanding"] == 5
    assert body["totalOutstanding"] == body["totalBalances"] == 125
    cashier = await client.get("/api/v1/admin/reports/points-liability", headers=await staff_login(client, "cashier1"))
    assert cashier.status_code == 403


async def test_liability_puts_every_kind_of_entry_in_its_column(client, demo):
    """Rewards count as earned, a redemption given back un-redeems, clawbacks and the debt they leave (paid off
    by a later earn) count as reversed; what is outstanding is what the store's lots still hold."""
    first = (await member_login(client, openid="oLiabilityKinds0000000001"))["member"]["id"]
    second = (await member_login(client, openid="oLiabilityKinds0000000002"))["member"]["id"]
    s1, s2 = demo["S001"], demo["S002"]
    await earn(first, 100, "a", store_id=s1)
    await service.reward(first, 20, store_id=s1, source_type="referral", source_id="r", idempotency_key="r:reward")
    await service.redeem(first, 30, store_id=s1, source_type="order", source_id="c", idempotency_key="c:redeem")
    await service.reverse("order", "c", refunded=1, of=1, idempotency_key="c:closed")  # the order closed unpaid
    await service.reverse("order", "a", refunded=1, of=1, idempotency_key="a:refund")
    await earn(second, 50, "d", store_id=s2)
    await service.redeem(second, 50, store_id=s2, source_type="order", source_id="e", idempotency_key="e:redeem")
    await service.reverse("order", "d", refunded=1, of=1, idempotency_key="d:refund")  # owed: 50 of debt
    await earn(second, 30, "f", store_id=s2)  # pays 30 of it off
    assert await service.balance_of(second) == (0, 20)

    body = (await client.get("/api/v1/admin/reports/points-liability", headers=await staff_login(client, "hq"))).json()
    by_code = {row["storeCode"]: row for row in body["stores"]}
    columns = ("earned", "redeemed", "expired", "reversed", "adjusted", "outstanding")
    assert {name: by_code["S001"][name] for name in columns} == {
        "earned": 120,
        "redeemed": 0,
        "expired": 0,
        "reversed": 100,
        "adjusted": 0,
        "outstanding": 20,
    }
    assert {name: by_code["S002"][name] for name in columns} == {
        "earned": 80,
        "redeemed": 50,
        "expired": 0,
        "reversed": 30,
        "adjusted": 0,
        "outstanding": 0,
    }
    assert body["totalOutstanding"] == body["totalBalances"] == 20


async def test_the_sweeper_expires_due_lots_while_the_app_runs(make_client):
    from backend.core.db import insert_row
    from backend.members.tables import Member

    member_id = await insert_row(Member, enrolled_via="cashier")
    await earn(member_id, 25, "due", now=utcnow() - timedelta(days=800))
    async with make_client(sweep_interval_seconds=0.05):
        for _ in range(100):
            if await service.balance_of(member_id) == (0, 0):
                break
            await asyncio.sleep(0.02)
    assert await service.balance_of(member_id) == (0, 0)
    kinds = [r["kind"] for r in await PointsEntry.select(PointsEntry.kind).order_by(PointsEntry.id)]
    assert kinds == ["earn", "expire"]


async def test_concurrent_sweeps_expire_each_lot_exactly_once():
    from backend.core.db import insert_row
    from backend.members.tables import Member

    members = [await insert_row(Member, enrolled_via="cashier") for _ in range(5)]
    past = utcnow() - timedelta(days=800)
    for i, member_id in enumerate(members):
        for j in range(4):
            await earn(member_id, 10 + j, f"due-{i}-{j}", now=past)
    await service.redeem(members[0], 15, store_id=None, source_type="order", source_id="x", idempotency_key="x:r")
    counts = await asyncio.gather(*(service.expire_due() for _ in range(6)))
    assert sum(counts) == 20  # every lot claimed by exactly one of the six sweeps
    expiries = await PointsEntry.select(PointsEntry.source_id).where(PointsEntry.kind == "expire")
    assert len(expiries) == len({row["source_id"] for row in expiries}) == 20 - 1  # one lot was spent to zero
    assert [await service.balance_of(m) for m in members] == [(0, 0)] * 5
    assert await service.expire_due() == 0


async def test_partial_refunds_of_a_redemption_give_each_lot_back_only_what_it_lost():
    from backend.core.db import insert_row
    from backend.members.tables import Member

    member_id = await insert_row(Member, enrolled_via="cashier")
    await earn(member_id, 60, "soon", now=utcnow() - timedelta(days=200))
    await earn(member_id, 100, "later")
    await service.redeem(member_id, 100, store_id=None, source_type="order", source_id="r", idempotency_key="r:redeem")
    for step, refunded in enumerate((1, 2, 3)):  # a third, then two thirds, then all of the order
        await service.reverse("order", "r", refunded=refunded, of=3, idempotency_key=f"refund-{step}")
        lots = await PointsLot.select(PointsLot.points, PointsLot.remaining).order_by(PointsLot.id)
        assert all(lot["remaining"] <= lot["points"] for lot in lots)
    lots = await PointsLot.select(PointsLot.points, PointsLot.remaining).order_by(PointsLot.id)
    assert lots == [{"points": 60, "remaining": 60}, {"points": 100, "remaining": 100}]
    assert await service.balance_of(member_id) == (160, 0)


async def test_points_for_a_merged_member_reach_the_survivor():
    from backend.core.db import insert_row
    from backend.members import service as members
    from backend.members.tables import Member, MergeReason

    survivor = await insert_row(Member, enrolled_via="cashier")
    merged = await insert_row(Member, enrolled_via="miniprogram")
    await earn(merged, 40, "before")
    await members.merge_members(survivor, merged, reason=MergeReason.hq)
    # A till identified the merged member a moment before the merge; its order settles after it.
    await earn(merged, 25, "after")
    await service.redeem(merged, 30, store_id=None, source_type="order", source_id="spend", idempotency_key="spend:r")
    assert await service.balance_of(survivor) == (35, 0)
    assert await service.balance_of(merged) == (0, 0)
