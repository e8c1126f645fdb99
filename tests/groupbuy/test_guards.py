"""The stock and seat guards hold by themselves, without the database's constraints or the KV's gate."""

import asyncio

from backend.core.kv import kv_from_url
from backend.groupbuy import service
from backend.groupbuy.errors import GroupFull, SoldOut
from backend.groupbuy.tables import Campaign, Group, Seat
from backend.payments.policy import PaymentPolicy
from tests.conftest import without_constraint
from tests.groupbuy.test_seats import new_campaign, open_group, shoppers


async def test_the_stock_guard_alone_never_sells_more_than_is_left(client, demo, sandbox_provider, settings):
    async with without_constraint(Campaign, "campaign_stock_in_range"):
        campaign = await new_campaign(client, demo, stock=5, groupSize=3, perMemberLimit=2)
        members = await shoppers(client, 6, prefix="oStockGuard")
        kv = kv_from_url(settings.redis_url)
        await kv.set(service._gate_key(campaign["id"]), b"1000", expires_in=60)  # the gate lets everything by

        async def take(member) -> str:
            try:
                await service.take_seat(
                    member_id=member["member"]["id"],
                    campaign_id=campaign["id"],
                    pickup_store_id=demo["S001"],
                    quantity=2,
                    provider=sandbox_provider,
                    policy=PaymentPolicy.from_settings(settings),
                    kv=kv,
                )
            except SoldOut:
                return "sold_out"
            finally:
                await kv.set(service._gate_key(campaign["id"]), b"1000", expires_in=60)
            return "taken"

        try:
            outcomes = await asyncio.gather(*(take(member) for member in members))
        finally:
            await kv.close()
        assert sorted(outcomes) == ["sold_out"] * 4 + ["taken"] * 2  # 2 + 2 of 5: the last unit is not 2
        assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 1
        assert sum(row["quantity"] for row in await Seat.select(Seat.quantity)) == 4


async def test_the_seat_guard_alone_never_fills_a_group_past_its_size(client, demo, sandbox_provider, settings):
    async with without_constraint(Group, "group_seats_in_range"):
        campaign = await new_campaign(client, demo, groupSize=3, stock=100)
        members = await shoppers(client, 9, prefix="oSeatGuard")
        group = (await open_group(client, members[0], campaign["id"], demo["S001"])).json()["group"]
        kv = kv_from_url(settings.redis_url)

        async def join(member) -> str:
            try:
                await service.take_seat(
                    member_id=member["member"]["id"],
                    group_id=group["id"],
                    pickup_store_id=demo["S001"],
                    quantity=1,
                    provider=sandbox_provider,
                    policy=PaymentPolicy.from_settings(settings),
                    kv=kv,
                )
            except GroupFull:
                return "full"
            return "joined"

        try:
            outcomes = await asyncio.gather(*(join(member) for member in members[1:]))
        finally:
            await kv.close()
        assert sorted(outcomes) == ["full"] * 6 + ["joined"] * 2
        assert (await Group.select(Group.seats_taken).first())["seats_taken"] == 3
        assert await Seat.count() == 3
