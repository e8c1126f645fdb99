"""Money that arrives too late goes back; a refund after success; virtual fill; orders follow a member merge."""

from datetime import timedelta

import pytest

from backend.core.clock import utcnow
from backend.groupbuy.tables import Campaign, Group, MemberUnits, Seat
from backend.orders import service as orders
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import CloseOutcome
from backend.payments.tables import PaymentRefund as SeatRefund
from backend.payments.tables import PaymentTrade
from backend.sandbox import service as sandbox
from backend.sandbox.keys import load_sandbox_keys
from backend.sandbox.notify import SandboxNotifier
from backend.sandbox.tables import SandboxRefund, SandboxTrade
from backend.sweeper import sweep_once
from tests.conftest import staff_login
from tests.groupbuy.test_seat_payments import confirm, succeeded_group
from tests.groupbuy.test_seats import join, make_due, new_campaign, open_group, shoppers
from tests.payments.test_notifications import post, sealed


class ClosedOnlyOnPaper:
    """WeChat Pay answers the close as done while the shopper's payment is already on its way."""

    def __init__(self, provider) -> None:
        self._provider = provider

    def __getattr__(self, name: str):
        return getattr(self._provider, name)

    async def close(self, out_trade_no: str) -> CloseOutcome:
        return CloseOutcome.closed


async def test_a_payment_landing_on_an_expired_seat_is_refunded_once(client, demo, sandbox_provider, settings):
    campaign = await new_campaign(client, demo, groupSize=3)
    leader, friend = await shoppers(client, 2, prefix="oLateSeat")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    joined = (await join(client, friend, opened["group"]["id"], demo["S001"])).json()
    await make_due(joined["order"]["id"])
    await sweep_once(provider=ClosedOnlyOnPaper(sandbox_provider), policy=PaymentPolicy.from_settings(settings))
    assert (await Seat.select(Seat.status).where(Seat.order == joined["order"]["id"]).first())["status"] == "expired"
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 29

    late = await confirm(client, joined["order"]["outTradeNo"])
    assert late["notifyStatus"] == 204
    seat = await Seat.select(Seat.status, Seat.holder).where(Seat.order == joined["order"]["id"]).first()
    assert seat == {"status": "refunded", "holder": None}
    order = await orders.find_order(joined["order"]["id"])  # received and given back, never counted as paid
    assert (order.status, order.paid_fen, order.refunded_fen, order.paid_at) == ("refunded", 9900, 9900, None)
    trade = (
        await PaymentTrade.select(PaymentTrade.status, PaymentTrade.paid_at)
        .where(PaymentTrade.order == joined["order"]["id"])
        .first()
    )
    assert trade["status"] == "closed" and trade["paid_at"] is not None
    refund = await SeatRefund.select(SeatRefund.kind, SeatRefund.status, SeatRefund.amount_fen).first()
    assert refund == {"kind": "late_payment", "status": "succeeded", "amount_fen": joined["order"]["amountFen"]}
    trade = (
        await SandboxTrade.select(SandboxTrade.state, SandboxTrade.refunded_fen)
        .where(SandboxTrade.out_trade_no == joined["order"]["outTradeNo"])
        .first()
    )
    assert trade == {"state": "REFUND", "refunded_fen": joined["order"]["amountFen"]}
    # The seat was given back when it expired: the late money moves neither the group nor the stock again.
    group = await Group.select(Group.seats_taken, Group.seats_paid).first()
    assert group == {"seats_taken": 1, "seats_paid": 0}
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 29
    units = await MemberUnits.select(MemberUnits.units).where(MemberUnits.member == friend["member"]["id"]).first()
    assert units["units"] == 0

    notifier = SandboxNotifier(load_sandbox_keys(settings.var_dir, settings.secret_key), url="")
    again = await post(client, sealed(notifier, await sandbox.find_trade(joined["order"]["outTradeNo"])))
    assert again.status_code == 204  # WeChat Pay's retry: nothing more
    assert await SandboxRefund.count() == 1 and await SeatRefund.count() == 1
    mine = (await client.get("/api/v1/me/groupbuy/orders", headers=friend["headers"])).json()["items"]
    assert [order["status"] for order in mine] == ["refunded"]


async def refund(client, headers, order_id: int, **body):
    return await client.post(f"/api/v1/cashier/groupbuy/orders/{order_id}/refunds", headers=headers, json=body)


async def test_a_refund_after_success_keeps_the_group_and_cancels_the_pickup(client, demo):
    at_s001, at_s002 = await succeeded_group(client, demo)
    cashier1, cashier2 = await staff_login(client, "cashier1"), await staff_login(client, "cashier2")
    stock_before = (await Campaign.select(Campaign.stock_left).first())["stock_left"]

    elsewhere = await refund(client, cashier2, at_s001["id"])  # not cashier2's store: no such order there
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "groupbuy.order_not_found")
    (shopper,) = await shoppers(client, 1, prefix="oRefundSelf")
    assert (await refund(client, shopper["headers"], at_s001["id"])).status_code == 403
    assert (await refund(client, cashier1, 999999)).status_code == 404
    assert await SeatRefund.count() == 0 and await SandboxRefund.count() == 0

    done = await refund(client, cashier1, at_s001["id"], reason="榴莲坏了")
    assert done.status_code == 201, done.text
    body = done.json()
    assert (body["orderId"], body["amountFen"], body["reason"], body["status"]) == (
        at_s001["id"],
        at_s001["amountFen"],
        "after_success",
        "succeeded",
    )
    again = await refund(client, cashier1, at_s001["id"])
    assert (again.status_code, again.json()["refundId"]) == (200, body["refundId"])
    assert await SandboxRefund.count() == 1

    group = (await client.get(f"/api/v1/groupbuy/groups/{at_s001['groupId']}")).json()
    assert group["status"] == "succeeded"
    seat = await Seat.select(Seat.status).where(Seat.order == at_s001["id"]).first()
    assert seat["status"] == "refunded"
    picked = await client.post(
        "/api/v1/cashier/pickups", headers=cashier1, json={"storeId": demo["S001"], "pickupCode": at_s001["pickupCode"]}
    )
    assert (picked.status_code, picked.json()["code"]) == (409, "groupbuy.order_refunded")
    owner = (await Seat.select(Seat.member).where(Seat.order == at_s001["id"]).first())["member"]
    assert (await MemberUnits.select(MemberUnits.units).where(MemberUnits.member == owner).first())["units"] == 0
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == stock_before

    # The other order is picked up first, then refunded: a complaint about the goods.
    assert (
        await client.post(
            "/api/v1/cashier/pickups",
            headers=cashier2,
            json={"storeId": demo["S002"], "pickupCode": at_s002["pickupCode"]},
        )
    ).status_code == 200
    assert (await refund(client, cashier2, at_s002["id"])).status_code == 201
    statuses = [row["status"] for row in await Seat.select(Seat.status).order_by(Seat.id)]
    assert statuses == ["refunded", "refunded"]
    hq = await staff_login(client, "hq")
    report = (await client.get(f"/api/v1/admin/groupbuy/campaigns/{at_s001['campaignId']}/demand", headers=hq)).json()
    assert report["totals"]["firmUnits"] == 0


async def test_only_an_order_of_a_group_that_succeeded_is_refunded_by_hand(client, demo):
    campaign = await new_campaign(client, demo, groupSize=2)
    (leader,) = await shoppers(client, 1, prefix="oNotYet")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    cashier1 = await staff_login(client, "cashier1")
    waiting = await refund(client, cashier1, opened["order"]["id"])
    assert (waiting.status_code, waiting.json()["code"]) == (409, "groupbuy.not_refundable")
    await confirm(client, opened["order"]["outTradeNo"])
    paid = await refund(client, cashier1, opened["order"]["id"])  # paid, but the group is still forming
    assert (paid.status_code, paid.json()["code"]) == (409, "groupbuy.not_refundable")
    assert await SeatRefund.count() == 0 and await SandboxRefund.count() == 0


async def test_virtual_fill_lets_a_nearly_full_group_succeed_with_its_empty_seats_flagged(
    client, demo, sandbox_provider, settings
):
    campaign = await new_campaign(client, demo, groupSize=5, virtualFill=True, virtualFillPercent=60, stock=50)
    assert (campaign["virtualFill"], campaign["virtualFillPercent"]) == (True, 60)
    people = await shoppers(client, 6, prefix="oVirtual")
    nearly = (await open_group(client, people[0], campaign["id"], demo["S002"])).json()
    seats = [nearly["order"]] + [
        (await join(client, p, nearly["group"]["id"], demo["S001"])).json()["order"] for p in people[1:4]
    ]
    for order in seats[:3]:  # three of five paid: 60%
        await confirm(client, order["outTradeNo"])
    short = (await open_group(client, people[4], campaign["id"], demo["S001"])).json()
    joined = (await join(client, people[5], short["group"]["id"], demo["S001"])).json()
    for order in (short["order"], joined["order"]):  # two of five: not enough
        await confirm(client, order["outTradeNo"])
    await Group.update({Group.expires_at: utcnow() - timedelta(seconds=1)}).where(Group.id > 0)
    await sweep_once(provider=sandbox_provider, policy=PaymentPolicy.from_settings(settings))

    group = (await client.get(f"/api/v1/groupbuy/groups/{nearly['group']['id']}")).json()
    assert (group["status"], group["seatsPaid"], group["virtualSeats"]) == ("succeeded", 3, 2)
    assert [m["virtual"] for m in group["members"]] == [False, False, False, True, True]
    statuses = {row["order"]: row["status"] for row in await Seat.select(Seat.order, Seat.status)}
    assert [statuses[order["id"]] for order in seats] == ["succeeded", "succeeded", "succeeded", "expired"]
    mine = (await client.get("/api/v1/me/groupbuy/orders", headers=people[0]["headers"])).json()["items"]
    assert (mine[0]["groupStatus"], mine[0]["groupVirtualSeats"]) == ("succeeded", 2)
    assert mine[0]["pickupCode"]
    unpaid = (
        await SandboxTrade.select(SandboxTrade.state).where(SandboxTrade.out_trade_no == seats[3]["outTradeNo"]).first()
    )
    assert unpaid["state"] == "CLOSED"

    failed = (await client.get(f"/api/v1/groupbuy/groups/{short['group']['id']}")).json()
    assert (failed["status"], failed["virtualSeats"]) == ("failed", 0)
    refunded = {row["out_trade_no"] for row in await SandboxRefund.select(SandboxRefund.out_trade_no)}
    assert refunded == {short["order"]["outTradeNo"], joined["order"]["outTradeNo"]}

    hq = await staff_login(client, "hq")
    report = (await client.get(f"/api/v1/admin/groupbuy/campaigns/{campaign['id']}/demand", headers=hq)).json()
    by_store = {row["storeCode"]: (row["firmUnits"], row["virtualSeats"]) for row in report["rows"]}
    assert by_store == {"S001": (2, 0), "S002": (1, 2)}  # the group is counted at its leader's store
    assert report["totals"]["virtualSeats"] == 2
    await sweep_once(provider=sandbox_provider, policy=PaymentPolicy.from_settings(settings))
    assert (await Group.select(Group.virtual_seats).where(Group.id == nearly["group"]["id"]).first()) == {
        "virtual_seats": 2
    }


async def test_without_virtual_fill_a_nearly_full_group_fails(client, demo, sandbox_provider, settings):
    campaign = await new_campaign(client, demo, groupSize=2)
    assert (campaign["virtualFill"], campaign["virtualFillPercent"]) == (False, 80)
    (leader,) = await shoppers(client, 1, prefix="oNoVirtual")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    await confirm(client, opened["order"]["outTradeNo"])
    await Group.update({Group.expires_at: utcnow() - timedelta(seconds=1)}).where(Group.id > 0)
    await sweep_once(provider=sandbox_provider, policy=PaymentPolicy.from_settings(settings))
    group = (await client.get(f"/api/v1/groupbuy/groups/{opened['group']['id']}")).json()
    assert (group["status"], group["virtualSeats"], len(group["members"])) == ("failed", 0, 1)


async def test_a_member_merge_moves_group_buy_orders_units_and_groups(client, demo):
    campaign = await new_campaign(client, demo, groupSize=3, perMemberLimit=3)
    older, newer, friend = await shoppers(client, 3, prefix="oMergeSeat")
    shared = (await open_group(client, friend, campaign["id"], demo["S001"])).json()
    await join(client, older, shared["group"]["id"], demo["S001"])
    await join(client, newer, shared["group"]["id"], demo["S001"])  # the same person, twice, in one group
    led = (await open_group(client, newer, campaign["id"], demo["S001"])).json()

    hq = await staff_login(client, "hq")
    merged = await client.post(
        "/api/v1/admin/members/merge",
        headers=hq,
        json={"survivorId": older["member"]["id"], "mergedId": newer["member"]["id"]},
    )
    assert merged.status_code == 200, merged.text
    mine = (await client.get("/api/v1/me/groupbuy/orders", headers=older["headers"])).json()["items"]
    assert len(mine) == 3
    units = await MemberUnits.select(MemberUnits.member, MemberUnits.units).where(
        MemberUnits.member.is_in([older["member"]["id"], newer["member"]["id"]])
    )
    assert units == [{"member": older["member"]["id"], "units": 3}]
    leader = await Group.select(Group.leader).where(Group.id == led["group"]["id"]).first()
    assert leader["leader"] == older["member"]["id"]
    group = (await client.get(f"/api/v1/groupbuy/groups/{shared['group']['id']}")).json()
    assert len(group["members"]) == 2 and group["seatsTaken"] == 3  # one person shown once; both seats kept
    stock = (await Campaign.select(Campaign.stock_left).first())["stock_left"]
    refused = await open_group(client, newer, campaign["id"], demo["S001"])  # the merged account's old token
    assert refused.status_code == 401
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == stock
    over = await open_group(client, older, campaign["id"], demo["S001"])  # the person's units, summed, are 3 of 3
    assert (over.status_code, over.json()["code"]) == (409, "groupbuy.member_limit")


async def test_the_database_holds_virtual_seats_to_the_empty_seats_of_a_success(client, demo):
    campaign = await new_campaign(client, demo, groupSize=3)
    (leader,) = await shoppers(client, 1, prefix="oVirtualCheck")
    group_id = (await open_group(client, leader, campaign["id"], demo["S001"])).json()["group"]["id"]
    with pytest.raises(Exception, match="group_virtual_seats_are_the_empty_ones"):  # still forming
        await Group.update({Group.virtual_seats: 3}).where(Group.id == group_id)
    with pytest.raises(Exception, match="group_virtual_seats_are_the_empty_ones"):  # not the empty seats
        await Group.update({Group.status: "succeeded", Group.virtual_seats: 1}).where(Group.id == group_id)
    await Group.update({Group.status: "succeeded", Group.virtual_seats: 3}).where(Group.id == group_id)
    assert (await Group.select(Group.virtual_seats).first())["virtual_seats"] == 3
