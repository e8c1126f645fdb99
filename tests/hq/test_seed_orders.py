"""The capacity seed: a chain's orders with their ledger, written by batches of set-based SQL."""

import pytest

from backend import cli
from backend.members.service import openid_value
from backend.members.tables import Member, MemberIdentity
from backend.orders.tables import Order
from backend.payments.tables import PaymentRefund, PaymentTrade
from backend.points.tables import PointsAccount, PointsEntry, PointsLot
from tests.conftest import SCALE_OUT

pytestmark = pytest.mark.skipif(not SCALE_OUT, reason="seed-orders seeds PostgreSQL")


async def test_seed_orders_writes_orders_by_batches_with_their_ledger(demo, monkeypatch):
    monkeypatch.setattr(cli, "SEED_BATCH_ORDERS", 400)
    heard: list[int] = []
    await cli.seed_orders(
        stores_count=7, orders=1_000, days=30, members_count=90, ledger=True, app_id="wxSeed", progress=heard.append
    )
    assert heard == [400, 400, 200]
    assert await Order.count() == 1_000 and await Member.count() == 90
    assert await PointsEntry.count() == await PointsLot.count() == 1_000  # an earning and its lot each
    assert await PaymentTrade.count() == await PaymentRefund.count() == 20  # one in fifty, partly refunded
    assert await MemberIdentity.count() == await PointsAccount.count() == 90
    some = await MemberIdentity.select().first()  # the member a login by that openid finds
    assert some["value"] == openid_value("wxSeed", f"oRpt{some['member']:024d}")
    accounts = {row["member"]: row["balance"] for row in await PointsAccount.select()}
    for row in await PointsEntry.select(PointsEntry.member, PointsEntry.delta):
        accounts[row["member"]] -= row["delta"]
    assert set(accounts.values()) == {0}  # every balance is the sum of its entries
    members = {row["member"] for row in await Order.select(Order.member)}
    assert members <= {row["id"] for row in await Member.select(Member.id)}
