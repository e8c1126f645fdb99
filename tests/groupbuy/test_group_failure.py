"""A group that misses its deadline fails: every paid member refunded once, unpaid seats closed, stock back."""

import asyncio
from datetime import timedelta

import pytest

from backend.core.clock import utcnow
from backend.groupbuy import service
from backend.groupbuy.tables import Campaign, Group, MemberUnits, Seat
from backend.payments.numbers import out_refund_no
from backend.payments.policy import PaymentPolicy
from backend.payments.tables import PaymentRefund as SeatRefund
from backend.sandbox.tables import SandboxRefund, SandboxTrade
from backend.sweeper import sweep_once
from tests.groupbuy.test_seat_payments import confirm
from tests.groupbuy.test_seats import join, new_campaign, open_group, shoppers


async def failing_group(client, demo) -> dict:
    """A group of 4: two seats paid, one waiting for its payment, one left empty; its deadline has passed."""
    campaign = await new_campaign(client, demo, groupSize=4, perMemberLimit=2)
    leader, paid, waiting = await shoppers(client, 3, prefix="oFailing")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"], quantity=2)).json()
    second = (await join(client, paid, opened["group"]["id"], demo["S002"])).json()
    third = (await join(client, waiting, opened["group"]["id"], demo["S001"])).json()
    for order in (opened["order"], second["order"]):
        assert (await confirm(client, order["outTradeNo"]))["notifyStatus"] == 204
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 30 - 4
    await Group.update({Group.expires_at: utcnow() - timedelta(seconds=1)}).where(Group.id == opened["group"]["id"])
    return {"group": opened["group"], "paid": [opened["order"], second["order"]], "waiting": third["order"]}


async def assert_settled_once(group_id: int, paid: list[dict], waiting: dict) -> None:
    group = await Group.select(Group.status, Group.settled_at, Group.seats_taken).where(Group.id == group_id).first()
    assert group["status"] == "failed" and group["settled_at"] is not None
    refunds = await SandboxRefund.select(
        SandboxRefund.out_trade_no, SandboxRefund.amount_fen, SandboxRefund.out_refund_no
    ).order_by(SandboxRefund.out_trade_no)
    # Each member's own payment goes back, once, under its own number: never the leader's order for everyone.
    assert sorted((r["out_trade_no"], r["amount_fen"]) for r in refunds) == sorted(
        (o["outTradeNo"], o["amountFen"]) for o in paid
    )
    assert {r["out_refund_no"] for r in refunds} == {
        out_refund_no(o["outTradeNo"], "groupbuy:group_failed") for o in paid
    }
    statuses = {row["order"]: row["status"] for row in await Seat.select(Seat.order, Seat.status)}
    assert [statuses[o["id"]] for o in paid] == ["refunded", "refunded"]
    assert statuses[waiting["id"]] == "expired"
    trade = (
        await SandboxTrade.select(SandboxTrade.state).where(SandboxTrade.out_trade_no == waiting["outTradeNo"]).first()
    )
    assert trade["state"] == "CLOSED"
    assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 30
    assert sum(row["units"] for row in await MemberUnits.select(MemberUnits.units)) == 0
    assert await SeatRefund.count() == 2


async def test_a_group_missing_its_deadline_refunds_every_paid_member_once(client, demo, sandbox_provider, settings):
    case = await failing_group(client, demo)
    policy = PaymentPolicy.from_settings(settings)
    await sweep_once(provider=sandbox_provider, policy=policy)
    await assert_settled_once(case["group"]["id"], case["paid"], case["waiting"])
    shown = (await client.get(f"/api/v1/groupbuy/groups/{case['group']['id']}")).json()
    assert shown["status"] == "failed"
    await sweep_once(provider=sandbox_provider, policy=policy)  # and again: nothing more
    await assert_settled_once(case["group"]["id"], case["paid"], case["waiting"])


async def test_two_sweepers_at_once_refund_each_member_once(client, demo, sandbox_provider, settings):
    case = await failing_group(client, demo)
    policy = PaymentPolicy.from_settings(settings)
    await asyncio.gather(*(sweep_once(provider=sandbox_provider, policy=policy) for _ in range(3)))
    await sweep_once(provider=sandbox_provider, policy=policy)
    await assert_settled_once(case["group"]["id"], case["paid"], case["waiting"])


class CrashesAtSecondRefund:
    """A worker that dies in the middle of a group's settlement."""

    def __init__(self, provider) -> None:
        self._provider, self.calls = provider, 0

    def __getattr__(self, name: str):
        return getattr(self._provider, name)

    async def refund(self, **call):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("the worker died here")
        return await self._provider.refund(**call)


async def test_a_settlement_interrupted_halfway_finishes_on_the_next_run(client, demo, sandbox_provider, settings):
    case = await failing_group(client, demo)
    policy = PaymentPolicy.from_settings(settings)
    with pytest.raises(RuntimeError, match="died"):
        await service.fail_due_groups(provider=CrashesAtSecondRefund(sandbox_provider), policy=policy)
    group = await Group.select(Group.status, Group.settled_at).first()
    assert group["status"] == "failed" and group["settled_at"] is None  # not finished: found again
    assert await SandboxRefund.count() == 1
    await sweep_once(provider=sandbox_provider, policy=policy)
    await assert_settled_once(case["group"]["id"], case["paid"], case["waiting"])


async def test_a_group_filled_in_time_does_not_fail(client, demo, sandbox_provider, settings):
    campaign = await new_campaign(client, demo, groupSize=2)
    leader, friend = await shoppers(client, 2, prefix="oInTimeGroup")
    opened = (await open_group(client, leader, campaign["id"], demo["S001"])).json()
    joined = (await join(client, friend, opened["group"]["id"], demo["S001"])).json()
    for order in (opened["order"], joined["order"]):
        await confirm(client, order["outTradeNo"])
    await Group.update({Group.expires_at: utcnow() - timedelta(seconds=1)}).where(Group.id > 0)
    await sweep_once(provider=sandbox_provider, policy=PaymentPolicy.from_settings(settings))
    assert (await Group.select(Group.status).first())["status"] == "succeeded"
    assert await SandboxRefund.count() == 0 and await SeatRefund.count() == 0
