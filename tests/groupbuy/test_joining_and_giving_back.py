"""Shoppers find a group to join and give an unpaid seat back at once; a group never outlives its campaign."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from backend.groupbuy import service
from backend.groupbuy.tables import Campaign, Group, MemberUnits, Seat
from backend.orders.tables import Order
from backend.payments.errors import AlreadyPaid, ProviderUnreachable
from backend.payments.policy import PaymentPolicy
from backend.payments.tables import PaymentTrade
from backend.sandbox import service as sandbox
from backend.sandbox.tables import SandboxTrade
from tests.groupbuy.test_seat_payments import confirm
from tests.groupbuy.test_seats import join, new_campaign, open_group, shoppers


async def forming(client, campaign_id: int, **params) -> httpx.Response:
    return await client.get(f"/api/v1/groupbuy/campaigns/{campaign_id}/groups", params=params)


async def test_shoppers_list_the_groups_they_may_join_soonest_deadline_first(client, demo):
    campaign = await new_campaign(client, demo, groupSize=2)
    a, b, c, d = await shoppers(client, 4, prefix="oForming")
    groups = [(await open_group(client, leader, campaign["id"], demo["S001"])).json()["group"] for leader in (a, b, c)]
    now = datetime.now(UTC)
    for group, minutes in zip(groups, (90, 30, 60), strict=True):
        await Group.update({Group.expires_at: now + timedelta(minutes=minutes)}).where(Group.id == group["id"])
    await join(client, d, groups[2]["id"], demo["S001"])  # full now: nobody can join it
    failed = (await open_group(client, d, campaign["id"], demo["S001"])).json()["group"]
    await Group.update({Group.status: "failed"}).where(Group.id == failed["id"])

    page = (await forming(client, campaign["id"], limit=1)).json()
    assert [g["id"] for g in page["items"]] == [groups[1]["id"]] and page["nextCursor"]
    rest = (await forming(client, campaign["id"], cursor=page["nextCursor"])).json()
    assert [g["id"] for g in rest["items"]] == [groups[0]["id"]] and rest["nextCursor"] is None
    assert rest["items"][0]["seatsLeft"] == 1 and len(rest["items"][0]["members"]) == 1
    assert "memberId" not in str(rest)
    past_every_id = (
        await forming(client, campaign["id"], cursor=f"{page['nextCursor'].split('_')[0]}_{10**17}")
    ).json()
    assert [g["id"] for g in past_every_id["items"]] == [groups[0]["id"]]  # ids past the range name no group
    for bad in ({"cursor": "tomorrow"}, {"limit": 0}, {"limit": 101}):
        answer = await forming(client, campaign["id"], **bad)
        assert (answer.status_code, answer.json()["code"]) == (422, "request.invalid"), bad
    # An id that names nothing is 404; one outside what an id can be is a bad request.
    for campaign_id, answer in ((999_999, 404), (2**31 - 1, 404), (2**31, 422), (2**62, 422), (0, 422)):
        missing = await forming(client, campaign_id)
        code = "groupbuy.campaign_not_found" if answer == 404 else "request.invalid"
        assert (missing.status_code, missing.json()["code"]) == (answer, code), campaign_id
    for group_id, answer in ((999_999, 404), (2**31, 422), (2**62, 422)):
        missing = await client.get(f"/api/v1/groupbuy/groups/{group_id}")
        code = "groupbuy.group_not_found" if answer == 404 else "request.invalid"
        assert (missing.status_code, missing.json()["code"]) == (answer, code), group_id


async def give_back(client, shopper, order_id: int) -> httpx.Response:
    return await client.post(f"/api/v1/me/groupbuy/orders/{order_id}/cancel", headers=shopper["headers"])


async def test_an_unpaid_seat_is_given_back_at_once_and_closed_at_wechat_pay_first(client, demo):
    campaign = await new_campaign(client, demo, groupSize=3, perMemberLimit=2)
    leader, friend, stranger = await shoppers(client, 3, prefix="oGiveBack")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    joined = (await join(client, friend, opened["group"]["id"], demo["S001"], quantity=2)).json()
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 27

    for not_theirs in (joined["order"]["id"], 999_999):
        someone_elses = await give_back(client, stranger, not_theirs)
        assert (someone_elses.status_code, someone_elses.json()["code"]) == (404, "groupbuy.order_not_found")
    for out_of_range in (2**31, 2**62):
        refused = await give_back(client, stranger, out_of_range)
        assert (refused.status_code, refused.json()["code"]) == (422, "request.invalid")
    given = await give_back(client, friend, joined["order"]["id"])
    assert given.status_code == 200, given.text
    assert (given.json()["status"], given.json()["paymentStatus"]) == ("cancelled", "cancelled")
    trade = (
        await SandboxTrade.select(SandboxTrade.state)
        .where(SandboxTrade.out_trade_no == joined["order"]["outTradeNo"])
        .first()
    )
    assert trade["state"] == "CLOSED"
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 29
    assert (await Group.select(Group.seats_taken).first())["seats_taken"] == 1
    units = await MemberUnits.select(MemberUnits.units).where(MemberUnits.member == friend["member"]["id"]).first()
    assert units["units"] == 0
    order = await Order.select(Order.status, Order.failure_reason).where(Order.id == joined["order"]["id"]).first()
    assert order == {"status": "cancelled", "failure_reason": "GIVEN_BACK"}
    assert (await give_back(client, friend, joined["order"]["id"])).status_code == 200  # the same, again
    late = await client.post(f"/api/v1/sandbox/payments/{joined['order']['outTradeNo']}/confirm")
    assert late.status_code == 409  # WeChat Pay takes no money for it any longer
    again = await join(client, friend, opened["group"]["id"], demo["S001"])  # a place again, a new seat
    assert again.status_code == 201, again.text

    await confirm(client, opened["order"]["outTradeNo"])
    paid = await give_back(client, leader, opened["order"]["id"])
    assert (paid.status_code, paid.json()["code"]) == (409, "groupbuy.not_cancellable")


class CloseUnreachable:
    def __init__(self, provider) -> None:
        self._provider = provider

    def __getattr__(self, name: str):
        return getattr(self._provider, name)

    async def close(self, out_trade_no: str):
        raise httpx.ConnectError("WeChat Pay unreachable")


class PaidJustBefore(CloseUnreachable):
    async def close(self, out_trade_no: str):
        await sandbox.pay_prepay(out_trade_no)
        return await self._provider.close(out_trade_no)


@pytest.mark.parametrize(
    ("provider", "status", "code", "seat"),
    [
        (CloseUnreachable, 503, "cashier.provider_unreachable", "pending_payment"),
        (PaidJustBefore, 409, "payments.already_paid", "paid"),
    ],
)
async def test_a_seat_is_not_given_back_unless_wechat_pay_closed_it(
    client, demo, sandbox_provider, settings, provider, status, code, seat
):
    campaign = await new_campaign(client, demo, groupSize=3)
    (leader,) = await shoppers(client, 1, prefix=f"oNotGivenBack{status}")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    with pytest.raises((ProviderUnreachable, AlreadyPaid)) as refused:
        await service.give_back_seat(
            opened["order"]["id"],
            member_id=leader["member"]["id"],
            provider=provider(sandbox_provider),
            policy=PaymentPolicy.from_settings(settings),
        )
    assert (refused.value.status_code, refused.value.code) == (status, code)
    assert (await Seat.select(Seat.status).first())["status"] == seat
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 29
    trade = await PaymentTrade.select(PaymentTrade.status, PaymentTrade.transaction_id).first()
    assert trade["status"] == ("paid" if seat == "paid" else "paying")
    if seat == "paid":  # recorded as WeChat Pay has it
        wechat = await sandbox.find_trade(opened["order"]["outTradeNo"])
        assert trade["transaction_id"] == wechat["transaction_id"] != ""


async def test_a_group_lives_from_fifteen_minutes_to_a_week_never_past_its_campaign(client, demo):
    quick = await new_campaign(client, demo, groupTtlMinutes=15)
    (leader,) = await shoppers(client, 1, prefix="oQuickGroup")
    group = (await open_group(client, leader, quick["id"], demo["S001"])).json()["group"]
    lives = datetime.fromisoformat(group["expiresAt"]) - datetime.now(UTC)
    assert timedelta(minutes=14) < lives <= timedelta(minutes=15)

    ends = datetime.now(UTC) + timedelta(hours=1)
    short = await new_campaign(client, demo, groupTtlMinutes=7 * 24 * 60, endsAt=ends.isoformat())
    assert short["groupTtlMinutes"] == 10_080
    (other,) = await shoppers(client, 1, prefix="oShortCampaign")
    clipped = (await open_group(client, other, short["id"], demo["S001"])).json()
    assert datetime.fromisoformat(clipped["group"]["expiresAt"]) <= datetime.fromisoformat(short["endsAt"])
    assert datetime.fromisoformat(clipped["order"]["payBy"]) <= datetime.fromisoformat(short["endsAt"])
