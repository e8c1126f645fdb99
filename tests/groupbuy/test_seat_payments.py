"""Seats are paid by WeChat Pay's word; a full group succeeds with pickup codes; unpaid seats expire."""

import asyncio

from backend.core.pickup import PICKUP_ALPHABET
from backend.groupbuy.tables import Campaign, Group, MemberUnits, Seat
from backend.orders.tables import Order
from backend.payments.policy import PaymentPolicy
from backend.sandbox import service as sandbox
from backend.sandbox.keys import load_sandbox_keys
from backend.sandbox.notify import SandboxNotifier
from backend.sandbox.tables import SandboxTrade
from backend.sweeper import sweep_once
from tests.conftest import staff_login
from tests.groupbuy.test_seats import join, make_due, new_campaign, open_group, shoppers
from tests.payments.test_notifications import post, sealed


async def confirm(client, out_trade_no: str, **body) -> dict:
    response = await client.post(f"/api/v1/sandbox/payments/{out_trade_no}/confirm", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_group_whose_every_seat_is_paid_succeeds_with_pickup_codes(client, demo):
    campaign = await new_campaign(client, demo, groupSize=2)
    leader, friend = await shoppers(client, 2, prefix="oPaidSeat")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    joined = (await join(client, friend, opened["group"]["id"], demo["S002"])).json()
    assert (await confirm(client, opened["order"]["outTradeNo"]))["notifyStatus"] == 204
    group = (await client.get(f"/api/v1/groupbuy/groups/{opened['group']['id']}")).json()
    assert (group["status"], group["seatsPaid"]) == ("forming", 1)
    first = await Seat.select().where(Seat.order == opened["order"]["id"]).first()
    assert (first["status"], first["pickup_code"]) == ("paid", None)

    assert (await confirm(client, joined["order"]["outTradeNo"]))["notifyStatus"] == 204
    group = (await client.get(f"/api/v1/groupbuy/groups/{opened['group']['id']}")).json()
    assert (group["status"], group["seatsPaid"], group["seatsLeft"]) == ("succeeded", 2, 0)
    seats = await Seat.select(Seat.status, Seat.pickup_code).order_by(Seat.id)
    assert [s["status"] for s in seats] == ["succeeded", "succeeded"]
    codes = [s["pickup_code"] for s in seats]
    assert len(set(codes)) == 2 and all(len(c) >= 10 and set(c) <= set(PICKUP_ALPHABET) for c in codes)


async def test_duplicate_seat_notifications_count_the_seat_once(client, demo, settings):
    campaign = await new_campaign(client, demo, groupSize=3)
    (leader,) = await shoppers(client, 1, prefix="oDupSeat")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    await confirm(client, opened["order"]["outTradeNo"], deliverNotification=False)
    notifier = SandboxNotifier(load_sandbox_keys(settings.var_dir, settings.secret_key), url="")
    trade = await sandbox.find_trade(opened["order"]["outTradeNo"])
    message = sealed(notifier, trade)
    answers = await asyncio.gather(*(post(client, message) for _ in range(3)))
    answers += [await post(client, sealed(notifier, trade)) for _ in range(2)]
    assert [a.status_code for a in answers] == [204] * 5
    assert (await Group.select(Group.seats_paid).first())["seats_paid"] == 1
    short = await post(
        client, sealed(notifier, trade, amount={"total": opened["order"]["amountFen"] - 1, "currency": "CNY"})
    )
    assert (short.status_code, short.json()["code"]) == (400, "payments.amount_mismatch")


async def test_an_unpaid_seat_expires_and_gives_everything_back(client, demo, sandbox_provider, settings):
    campaign = await new_campaign(client, demo, groupSize=3, perMemberLimit=2)
    leader, friend = await shoppers(client, 2, prefix="oExpire")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    joined = (await join(client, friend, opened["group"]["id"], demo["S001"], quantity=2)).json()
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 27
    await make_due(joined["order"]["id"])
    await sweep_once(provider=sandbox_provider, policy=PaymentPolicy.from_settings(settings))

    seat = await Seat.select(Seat.status, Seat.holder).where(Seat.order == joined["order"]["id"]).first()
    assert seat == {"status": "expired", "holder": None}
    assert (await Group.select(Group.seats_taken).first())["seats_taken"] == 1
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 29
    units = await MemberUnits.select(MemberUnits.units).where(MemberUnits.member == friend["member"]["id"]).first()
    assert units["units"] == 0
    trade = (
        await SandboxTrade.select(SandboxTrade.state)
        .where(SandboxTrade.out_trade_no == joined["order"]["outTradeNo"])
        .first()
    )
    assert trade["state"] == "CLOSED"  # closed at WeChat Pay: no money can land on the expired seat
    late = await client.post(f"/api/v1/sandbox/payments/{joined['order']['outTradeNo']}/confirm")
    assert late.status_code == 409
    again = await join(client, friend, opened["group"]["id"], demo["S001"], quantity=2)  # a new seat
    assert again.status_code == 201, again.text
    # The leader's seat is not due: untouched.
    assert (await Seat.select(Seat.status).where(Seat.order == opened["order"]["id"]).first())["status"] == (
        "pending_payment"
    )


async def test_a_seat_paid_in_time_is_not_expired_though_its_notification_was_lost(
    client, demo, sandbox_provider, settings
):
    campaign = await new_campaign(client, demo, groupSize=2)
    (leader,) = await shoppers(client, 1, prefix="oInTime")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    await confirm(client, opened["order"]["outTradeNo"], deliverNotification=False)
    await make_due(opened["order"]["id"])
    await sweep_once(provider=sandbox_provider, policy=PaymentPolicy.from_settings(settings))
    seat = await Seat.select(Seat.status, Seat.holder).first()
    assert seat["status"] == "paid" and seat["holder"] is not None
    assert (await Group.select(Group.seats_paid, Group.seats_taken).first()) == {"seats_paid": 1, "seats_taken": 1}
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 29


async def succeeded_group(client, demo) -> list[dict]:
    campaign = await new_campaign(client, demo, groupSize=2, pickupStoreIds=[demo["S001"], demo["S002"]])
    leader, friend = await shoppers(client, 2, prefix="oPickup")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    joined = (await join(client, friend, opened["group"]["id"], demo["S002"])).json()
    for order in (opened["order"], joined["order"]):
        await confirm(client, order["outTradeNo"])
    mine = (await client.get("/api/v1/me/groupbuy/orders", headers=leader["headers"])).json()["items"]
    theirs = (await client.get("/api/v1/me/groupbuy/orders", headers=friend["headers"])).json()["items"]
    assert [o["status"] for o in mine + theirs] == ["succeeded", "succeeded"]
    assert mine[0]["pickupCode"] != theirs[0]["pickupCode"]
    return [mine[0], theirs[0]]


async def test_a_pickup_code_works_once_and_only_at_its_own_store(client, demo):
    at_s001, at_s002 = await succeeded_group(client, demo)
    cashier1, cashier2 = await staff_login(client, "cashier1"), await staff_login(client, "cashier2")

    async def pick(headers, store: str, code: str):
        return await client.post(
            "/api/v1/cashier/pickups", headers=headers, json={"storeId": demo[store], "pickupCode": code}
        )

    elsewhere = await pick(cashier2, "S002", at_s001["pickupCode"])  # a real code, at the wrong store
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "groupbuy.pickup_not_found")
    guessed = await pick(cashier1, "S001", "ABCDEFGHJKMN")
    assert (guessed.status_code, guessed.json()["code"]) == (404, "groupbuy.pickup_not_found")
    not_my_store = await pick(cashier1, "S002", at_s002["pickupCode"])  # cashier1 does not act for S002
    assert not_my_store.status_code == 404
    done = await pick(cashier1, "S001", at_s001["pickupCode"].lower())
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["id"]) == ("picked_up", at_s001["id"])
    again = await pick(cashier1, "S001", at_s001["pickupCode"])
    assert (again.status_code, again.json()["code"]) == (409, "groupbuy.already_picked_up")
    assert (await pick(cashier2, "S002", at_s002["pickupCode"])).status_code == 200
    statuses = [row["status"] for row in await Seat.select(Seat.status).order_by(Seat.id)]
    assert statuses == ["picked_up", "picked_up"]


async def test_groups_of_the_same_members_succeeding_at_once_all_earn_their_points(client, demo):
    """Each success earns points for every member of its group: two groups of the same two members, filled at
    the same moment from opposite ends, take the members' accounts in one order, and neither waits forever."""
    campaign = await new_campaign(client, demo, groupSize=2, perMemberLimit=20)
    a, b = await shoppers(client, 2, prefix="oCrossGroups")
    last_payments = []
    for _ in range(6):
        for leader, friend in ((a, b), (b, a)):
            opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
            joined = (await join(client, friend, opened["group"]["id"], demo["S001"])).json()
            await confirm(client, opened["order"]["outTradeNo"])
            last_payments.append(joined["order"]["outTradeNo"])
    answers = await asyncio.gather(*(confirm(client, number) for number in last_payments))
    assert [answer["notifyStatus"] for answer in answers] == [204] * 12
    assert await Group.count().where(Group.status == "succeeded") == 12
    orders = await Order.select(Order.points_earned).where(Order.kind == "groupbuy")
    assert len(orders) == 24 and all(order["points_earned"] > 0 for order in orders)
