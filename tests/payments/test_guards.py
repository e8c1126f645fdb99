"""The guards that keep money right hold by themselves, without the database's constraints behind them."""

import asyncio

from backend.orders.tables import Order
from backend.payments.tables import PaymentRefund
from backend.points import service as points
from backend.points.tables import EntryKind, PointsEntry
from backend.sandbox import service as sandbox
from tests.cashier.test_refunds import refund
from tests.cashier.test_till_checkout import payment_code, scan
from tests.conftest import member_login, staff_login, without_constraint
from tests.payments.test_notifications import pay_at_store, post, sealed


async def test_the_refund_sum_guard_alone_keeps_refunds_within_what_was_paid(client, demo):
    async with without_constraint(Order, "sale_order_refunds_within_paid"):
        cashier1 = await staff_login(client, "cashier1")
        openid = "oRefundGuard0000000000001"
        till = (
            await scan(
                client, cashier1, demo["S001"], await payment_code(client, openid), "refund-guard-1", amount=10_000
            )
        ).json()
        answers = await asyncio.gather(
            *(refund(client, cashier1, till["id"], 3_000, f"guard-{n:04d}") for n in range(8))
        )
        assert sorted(a.status_code for a in answers) == [201] * 3 + [422] * 5
        assert (await Order.select(Order.refunded_fen).first())["refunded_fen"] == 9_000
        last = await refund(client, cashier1, till["id"], 1_001, "guard-last")
        assert (last.status_code, last.json()["details"]) == (422, {"refundableFen": 1_000})
        assert (await refund(client, cashier1, till["id"], 1_000, "guard-rest")).status_code == 201
        assert await PaymentRefund.count() == 4


async def test_a_repeated_success_notification_after_a_refund_changes_nothing(client, demo, notifier):
    shopper = await member_login(client, openid="oRepeatAfterRefund0000001")
    started = (await pay_at_store(client, demo["S001"], shopper, 4_000)).json()
    trade = await sandbox.pay_prepay(started["outTradeNo"])
    assert (await post(client, sealed(notifier, trade))).status_code == 204
    cashier1 = await staff_login(client, "cashier1")
    assert (await refund(client, cashier1, started["orderId"], 2_000, "repeat-refund-1")).status_code == 201
    before = await Order.select().first()
    for _ in range(2):  # WeChat Pay repeats the payment's notification after the refund
        assert (
            await post(client, sealed(notifier, await sandbox.find_trade(started["outTradeNo"])))
        ).status_code == 204
    assert await Order.select().first() == before
    assert (before["status"], before["paid_fen"], before["refunded_fen"]) == ("partially_refunded", 4_000, 2_000)
    assert await PointsEntry.count().where(PointsEntry.kind == EntryKind.earn) == 1
    assert await PaymentRefund.count() == 1
    assert await points.balance_of(shopper["member"]["id"]) == (40, 0)  # 80 earned, half taken back
