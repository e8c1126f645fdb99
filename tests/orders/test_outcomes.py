"""Each outcome is recorded once: its compare-and-set, and its handlers, run exactly once however it is raced."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import asyncpg
import pytest

from backend.core.clock import utcnow
from backend.core.db import write_transaction
from backend.members import service as members
from backend.members.wechat import WeChatSession
from backend.orders import service as orders
from backend.orders.outcomes import Outcome, on_closed, on_paid
from backend.orders.tables import Order, OrderKind, OrderStatus
from backend.payments import service as payments
from backend.payments.policy import PaymentPolicy
from backend.points import service as points
from backend.points.tables import PointsEntry
from backend.sandbox import service as sandbox
from backend.sweeper import sweep_once
from tests.cashier.test_till_checkout import payment_code, scan
from tests.conftest import member_login, staff_login
from tests.payments.test_notifications import pay_at_store, post, sealed


@contextmanager
def counted(outcome: Outcome) -> Iterator[Counter]:
    """How many times the outcome's handlers run for each order, while the block runs."""
    seen: Counter = Counter()

    async def count(order) -> None:
        seen[order.id] += 1

    outcome(None)(count)
    try:
        yield seen
    finally:
        outcome.unregister(count)


async def new_order(store_id: int, key: str, member_id: int | None = None) -> int:
    now = utcnow()
    async with write_transaction():
        return await orders.place_order(
            kind=OrderKind.till,
            store_id=store_id,
            member_id=member_id,
            amount_fen=1000,
            out_trade_no=key,
            pay_by=now,
            idempotency_key=key,
            now=now,
        )


async def test_an_order_is_paid_once_however_often_it_is_recorded(demo):
    order_id = await new_order(demo["S001"], "outcome-paid-1")
    with counted(on_paid) as runs:
        answers = []
        for _ in range(3):
            async with write_transaction():
                answers.append(
                    await orders.record_paid(order_id, paid_fen=1000, payer_openid="", app_id="wx", now=utcnow())
                )
    assert [answer is not None for answer in answers] == [True, False, False]
    assert runs == {order_id: 1}
    stored = await orders.find_order(order_id)
    assert stored.status is OrderStatus.paid
    assert answers[0] == stored  # the order as its payment left it, typed as it is read
    assert isinstance(answers[0].paid_at, datetime) and answers[0].paid_at.tzinfo is not None


async def test_a_merge_that_moved_the_order_while_its_payment_was_recorded_stands(demo):
    async with write_transaction():
        merged, _ = await members.enrol_payer(
            WeChatSession("wx", "oMergedMeanwhile00000001", None), store_id=demo["S001"], now=utcnow()
        )
        survivor, _ = await members.enrol_payer(
            WeChatSession("wx", "oSurvivorMeanwhile000001", None), store_id=demo["S001"], now=utcnow()
        )
    order_id = await new_order(demo["S001"], "outcome-merged-1", member_id=merged)

    @on_paid()
    async def merged_meanwhile(order) -> None:  # what a merge committed between the read and the write does
        await Order.update({Order.member: survivor}).where(Order.id == order.id)

    try:
        async with write_transaction():
            paid = await orders.record_paid(order_id, paid_fen=1000, payer_openid="", app_id="wx", now=utcnow())
    finally:
        on_paid.unregister(merged_meanwhile)
    assert paid.member == survivor and not paid.member_enrolled  # the order as it was left
    order = await orders.find_order(order_id)
    assert (order.status, order.member, order.member_enrolled) == (OrderStatus.paid, survivor, False)


async def test_an_order_closes_once_and_a_paid_one_never(demo):
    closing, paid = await new_order(demo["S001"], "outcome-closed-1"), await new_order(demo["S001"], "outcome-paid-2")
    async with write_transaction():
        await orders.record_paid(paid, paid_fen=1000, payer_openid="", app_id="wx", now=utcnow())
    with counted(on_closed) as runs:
        async with write_transaction():
            first = await orders.record_closed(closing, status=OrderStatus.cancelled, failure_reason="X", now=utcnow())
            again = await orders.record_closed(closing, status=OrderStatus.failed, failure_reason="Y", now=utcnow())
            after_paid = await orders.record_closed(
                paid, status=OrderStatus.cancelled, failure_reason="Z", now=utcnow()
            )
    assert (first, again, after_paid) == (True, False, False)
    assert runs == {closing: 1}
    assert (await orders.find_order(closing)).failure_reason == "X"
    assert (await orders.find_order(paid)).status is OrderStatus.paid
    with pytest.raises(ValueError):
        await orders.record_closed(closing, status=OrderStatus.paid, failure_reason="", now=utcnow())


async def test_the_paid_handlers_run_once_however_notifications_and_sweepers_race(
    make_client, demo, sandbox_provider, settings, notifier
):
    async with make_client(store_payment_query_interval_seconds=0.0) as client:
        shopper = await member_login(client, openid="oOnceOnly00000000000000001")
        started = (await pay_at_store(client, demo["S001"], shopper, 3000)).json()
        trade = await sandbox.pay_prepay(started["outTradeNo"])
        policy = PaymentPolicy.from_settings(settings)
        with counted(on_paid) as runs:
            await asyncio.gather(
                *(post(client, sealed(notifier, trade)) for _ in range(5)),
                *(sweep_once(provider=sandbox_provider, policy=policy) for _ in range(3)),
            )
        assert runs == {started["orderId"]: 1}


async def test_a_payment_postgresql_broke_a_deadlock_in_is_recorded_again_from_the_start(make_client, demo, settings):
    """PostgreSQL ends one of two transactions that wait for each other and rolls it back whole; recording the
    payment then runs again, so the notification is still acknowledged and the order paid once."""
    async with make_client() as client:
        shopper = await member_login(client, openid="oDeadlockVictim0000000001")
        started = (await pay_at_store(client, demo["S001"], shopper, 3000)).json()
        trade = await sandbox.pay_prepay(started["outTradeNo"])
        runs = []

        @on_paid()
        async def chosen_as_the_victim(order) -> None:
            runs.append(order.id)
            if len(runs) == 1:
                raise asyncpg.DeadlockDetectedError("deadlock detected")

        try:
            paid = await payments.settle_paid(
                (await payments.trade_of(started["orderId"])).id,
                transaction_id=trade["transaction_id"],
                payer_openid=trade["openid"],
                amount_fen=3000,
                policy=PaymentPolicy.from_settings(settings),
            )
        finally:
            on_paid.unregister(chosen_as_the_victim)
        assert runs == [started["orderId"]] * 2  # rolled back once, then recorded
        assert (paid.status, paid.points_earned) == (OrderStatus.paid, 60)
        assert await PointsEntry.count() == 1 and await points.balance_of(shopper["member"]["id"]) == (60, 0)


async def test_a_till_order_a_cashier_of_another_store_cannot_see_cancel_or_refund(make_client, demo):
    async with make_client(micropay_inline_wait_seconds=0.0) as client:
        cashier1, cashier2 = await staff_login(client, "cashier1"), await staff_login(client, "cashier2")
        openid = "oOtherStore00000000000001"
        code = await payment_code(client, openid, "password_timeout")
        order = (await scan(client, cashier1, demo["S001"], code, "other-store-01")).json()
        assert order["status"] == "paying"
        base = f"/api/v1/cashier/orders/{order['id']}"
        for answer in (
            await client.get(base, headers=cashier2),
            await client.post(f"{base}/cancel", headers=cashier2),
            await client.post(f"{base}/refunds", headers=cashier2, json={"amountFen": 1, "idempotencyKey": "x" * 8}),
        ):
            assert (answer.status_code, answer.json()["code"]) == (404, "cashier.order_not_found")
        assert (await orders.find_order(order["id"])).status is OrderStatus.paying  # still under way, untouched
