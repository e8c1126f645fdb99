"""Taking seats: the seat, the member's units and the stock together, never more than there are."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from backend.core.clock import utcnow
from backend.core.kv import MemoryKV, kv_from_url
from backend.groupbuy import service
from backend.groupbuy.errors import QuantityOverLimit, SoldOut
from backend.groupbuy.tables import Campaign, Group, MemberUnits, Seat
from backend.orders.tables import Order
from backend.payments.errors import PaymentNotStarted
from backend.payments.policy import PaymentPolicy
from backend.payments.tables import PaymentTrade
from backend.sandbox.tables import SandboxTrade
from tests.conftest import member_login, staff_login
from tests.groupbuy.test_campaigns import ADMIN, campaign_body


async def make_due(order_id: int) -> None:
    """The seat's payment deadline has passed, and its next query is due."""
    past = utcnow() - timedelta(seconds=1)
    await PaymentTrade.update({PaymentTrade.expires_at: past, PaymentTrade.next_query_at: past}).where(
        PaymentTrade.order == order_id
    )
    await Order.update({Order.pay_by: past}).where(Order.id == order_id)


async def new_campaign(client, demo, **changes) -> dict:
    response = await client.post(ADMIN, headers=await staff_login(client, "hq"), json=campaign_body(demo, **changes))
    assert response.status_code == 201, response.text
    return response.json()


async def shoppers(client, count: int, prefix: str = "oSeat") -> list[dict]:
    return [await member_login(client, openid=f"{prefix}{i:021d}") for i in range(count)]


async def open_group(client, shopper, campaign_id: int, store_id: int, quantity: int = 1):
    return await client.post(
        f"/api/v1/groupbuy/campaigns/{campaign_id}/groups",
        headers=shopper["headers"],
        json={"pickupStoreId": store_id, "quantity": quantity},
    )


async def join(client, shopper, group_id: int, store_id: int, quantity: int = 1):
    return await client.post(
        f"/api/v1/groupbuy/groups/{group_id}/orders",
        headers=shopper["headers"],
        json={"pickupStoreId": store_id, "quantity": quantity},
    )


async def test_a_leader_opens_a_group_and_friends_join(client, demo):
    campaign = await new_campaign(client, demo)
    leader, friend = await shoppers(client, 2)
    opened = await open_group(client, leader, campaign["id"], demo["S001"], quantity=2)
    assert opened.status_code == 201, opened.text
    group, order = opened.json()["group"], opened.json()["order"]
    assert (group["status"], group["seatsTaken"], group["seatsLeft"], group["groupSize"]) == ("forming", 1, 2, 3)
    assert (order["status"], order["quantity"], order["amountFen"]) == ("pending_payment", 2, 19800)
    assert order["payParams"]["package"].startswith("prepay_id=") and order["payBy"] > order["createdAt"]
    joined = await join(client, friend, group["id"], demo["S002"])
    assert joined.status_code == 201, joined.text
    assert joined.json()["group"]["seatsTaken"] == 2 and joined.json()["order"]["pickupStoreId"] == demo["S002"]
    shown = (await client.get(f"/api/v1/groupbuy/groups/{group['id']}")).json()
    assert shown["seatsLeft"] == 1 and len(shown["members"]) == 2 and "memberId" not in str(shown)
    assert (await client.get(f"/api/v1/groupbuy/campaigns/{campaign['id']}")).json()["stockLeft"] == 30 - 3
    assert await SandboxTrade.count() == 2  # one JSAPI order per seat


async def test_two_hundred_concurrent_joins_never_take_more_than_the_stock(client, demo):
    # Groups of 20: no group can fill before the stock runs out, so the stock alone decides. (Were a group
    # to fill, an attempt refused for that would hold a unit at the stock gate for a moment, and others
    # would meanwhile be told sold out: never more seats than stock, but perhaps a unit left over.)
    campaign = await new_campaign(client, demo, stock=20, groupSize=20, perMemberLimit=1)
    members = await shoppers(client, 208, prefix="oFlash")
    groups = [
        (await open_group(client, leader, campaign["id"], demo["S001"])).json()["group"]["id"] for leader in members[:8]
    ]  # 8 seats, and 12 units left for 200 attempts
    answers = await asyncio.gather(*(join(client, m, groups[i % 8], demo["S001"]) for i, m in enumerate(members[8:])))
    codes = sorted(a.status_code for a in answers)
    seen = Counter((a.status_code, a.json().get("code")) for a in answers)
    assert codes.count(201) == 12 and codes.count(409) == 188, seen
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"groupbuy.sold_out"}
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 0
    assert await Seat.count() == 20
    taken = [row["seats_taken"] for row in await Group.select(Group.seats_taken)]
    assert sum(taken) == 20
    assert sum(r["units"] for r in await MemberUnits.select(MemberUnits.units)) == 20


async def test_five_members_racing_for_the_last_seat_one_gets_it(client, demo):
    campaign = await new_campaign(client, demo, groupSize=3)
    members = await shoppers(client, 7, prefix="oRace")
    group = (await open_group(client, members[0], campaign["id"], demo["S001"])).json()["group"]
    assert (await join(client, members[1], group["id"], demo["S001"])).status_code == 201
    answers = await asyncio.gather(*(join(client, m, group["id"], demo["S001"]) for m in members[2:]))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"groupbuy.group_full"}
    assert (await Group.select(Group.seats_taken).first())["seats_taken"] == 3
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 30 - 3  # no stock lost


async def test_the_per_member_limit_holds_under_concurrency(client, demo):
    campaign = await new_campaign(client, demo, perMemberLimit=3, groupSize=2, stock=100)
    (greedy,) = await shoppers(client, 1, prefix="oGreedy")
    answers = await asyncio.gather(
        *(open_group(client, greedy, campaign["id"], demo["S001"], quantity=2) for _ in range(6))
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"groupbuy.member_limit"}
    assert (await MemberUnits.select(MemberUnits.units).first())["units"] == 2
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 98
    assert await Group.count() == 1  # the refused groups were never opened
    over = await open_group(client, greedy, campaign["id"], demo["S001"], quantity=4)
    assert (over.status_code, over.json()["code"]) == (409, "groupbuy.member_limit")


async def test_one_live_seat_per_member_and_group(client, demo):
    campaign = await new_campaign(client, demo)
    (leader,) = await shoppers(client, 1, prefix="oTwice")
    group = (await open_group(client, leader, campaign["id"], demo["S001"])).json()["group"]
    again = await asyncio.gather(*(join(client, leader, group["id"], demo["S001"]) for _ in range(3)))
    assert {(a.status_code, a.json()["code"]) for a in again} == {(409, "groupbuy.already_in_group")}
    assert (await Group.select(Group.seats_taken).first())["seats_taken"] == 1
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 29
    assert (await MemberUnits.select(MemberUnits.units).first())["units"] == 1


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"pickupStoreId": 0}, 422, "request.invalid"),
        ({"pickupStoreId": 1, "quantity": 0}, 422, "request.invalid"),
        ({"pickupStoreId": 1, "extra": True}, 422, "request.invalid"),
    ],
)
async def test_bad_seat_requests_change_nothing(client, demo, body, status, code):
    campaign = await new_campaign(client, demo)
    (shopper,) = await shoppers(client, 1, prefix="oBadSeat")
    response = await client.post(
        f"/api/v1/groupbuy/campaigns/{campaign['id']}/groups", headers=shopper["headers"], json=body
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert await Group.count() == 0 and await Seat.count() == 0


async def test_seats_are_refused_where_the_campaign_does_not_allow_them(client, demo):
    campaign = await new_campaign(client, demo, pickupStoreIds=[demo["S001"]])
    (shopper,) = await shoppers(client, 1, prefix="oRefused")
    wrong_store = await open_group(client, shopper, campaign["id"], demo["S003"])
    assert (wrong_store.status_code, wrong_store.json()["code"]) == (422, "groupbuy.pickup_store_invalid")
    missing = await open_group(client, shopper, 999999, demo["S001"])
    assert (missing.status_code, missing.json()["code"]) == (404, "groupbuy.campaign_not_found")
    no_group = await join(client, shopper, 999999, demo["S001"])
    assert (no_group.status_code, no_group.json()["code"]) == (404, "groupbuy.group_not_found")
    await Campaign.update({Campaign.ends_at: Campaign.starts_at}).where(Campaign.id == campaign["id"])
    closed = await open_group(client, shopper, campaign["id"], demo["S001"])
    assert (closed.status_code, closed.json()["code"]) == (409, "groupbuy.campaign_closed")
    staff = await client.post(
        f"/api/v1/groupbuy/campaigns/{campaign['id']}/groups",
        headers=await staff_login(client, "hq"),
        json={"pickupStoreId": demo["S001"]},
    )
    assert staff.status_code == 403
    assert await Group.count() == 0 and await Seat.count() == 0 and await MemberUnits.count() == 0


async def test_a_seat_is_never_payable_after_its_groups_deadline(client, demo):
    campaign = await new_campaign(client, demo, paymentWindowMinutes=60)
    leader, friend = await shoppers(client, 2, prefix="oDeadline")
    group = (await open_group(client, leader, campaign["id"], demo["S001"])).json()["group"]
    soon = datetime.now(UTC) + timedelta(minutes=5)
    await Group.update({Group.expires_at: soon}).where(Group.id == group["id"])
    order = (await join(client, friend, group["id"], demo["S001"])).json()["order"]
    assert datetime.fromisoformat(order["payBy"]) <= soon


class PrepayFails:
    def __init__(self, provider) -> None:
        self._provider = provider

    def __getattr__(self, name: str):
        return getattr(self._provider, name)

    async def create_jsapi(self, **call):
        raise httpx.ConnectError("WeChat Pay unreachable")


async def test_a_seat_whose_payment_cannot_start_is_given_back(client, demo, sandbox_provider, settings):
    campaign = await new_campaign(client, demo)
    (leader,) = await shoppers(client, 1, prefix="oNoPrepay")
    shopper_id = leader["member"]["id"]
    with pytest.raises(PaymentNotStarted):
        await service.take_seat(
            member_id=shopper_id,
            campaign_id=campaign["id"],
            pickup_store_id=demo["S001"],
            quantity=1,
            provider=PrepayFails(sandbox_provider),
            policy=PaymentPolicy.from_settings(settings),
            kv=MemoryKV(),
        )
    assert (await Seat.select(Seat.status).first())["status"] == "expired"  # at once: nothing can pay it
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 30
    assert (await Group.select(Group.seats_taken).first())["seats_taken"] == 0


async def test_the_stock_gate_turns_sold_out_requests_away_and_heals_from_the_database(
    client, demo, sandbox_provider, settings
):
    campaign = await new_campaign(client, demo, stock=3, groupSize=3, perMemberLimit=1)
    members = await shoppers(client, 6, prefix="oGate")
    kv = kv_from_url(settings.redis_url)
    gate = service._gate_key(campaign["id"])
    call = {
        "campaign_id": campaign["id"],
        "pickup_store_id": demo["S001"],
        "quantity": 1,
        "provider": sandbox_provider,
        "policy": PaymentPolicy.from_settings(settings),
        "kv": kv,
    }
    try:
        for member in members[:3]:
            await service.take_seat(member_id=member["member"]["id"], **call)
        assert await kv.get(gate) == b"0"  # built from the database on first use, then taken down to 0
        seats_before = await Seat.count()
        with pytest.raises(SoldOut):
            await service.take_seat(member_id=members[3]["member"]["id"], **call)
        assert await Seat.count() == seats_before

        await kv.set(gate, b"1000", expires_in=60)  # wrong, too high: the database still decides
        with pytest.raises(SoldOut):
            await service.take_seat(member_id=members[4]["member"]["id"], **call)
        assert await kv.get(gate) is None  # and the gate is dropped, to be rebuilt from the database

        await Campaign.update({Campaign.stock_left: 1}).where(Campaign.id == campaign["id"])  # stock came back
        await kv.delete(gate)  # as its short expiry would
        with pytest.raises(QuantityOverLimit):  # refused after the gate: the unit goes back to it
            await service.take_seat(member_id=members[0]["member"]["id"], **call)
        assert await kv.get(gate) == b"1"
        await service.take_seat(member_id=members[5]["member"]["id"], **call)
        assert await kv.get(gate) == b"0"
        assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 0
    finally:
        await kv.close()


async def test_the_database_holds_a_live_seat_to_its_own_member(client, demo):
    campaign = await new_campaign(client, demo)
    leader, other = await shoppers(client, 2, prefix="oHolder")
    seat_id = (await open_group(client, leader, campaign["id"], demo["S001"])).json()["order"]["id"]
    with pytest.raises(Exception, match="seat_held_by_its_member"):
        await Seat.update({Seat.holder: other["member"]["id"]}).where(Seat.order == seat_id)
    assert (await Seat.select(Seat.holder).first())["holder"] == leader["member"]["id"]
