"""Refunds: once per key, never more than was paid, points following in proportion through the ledger."""

import asyncio
import json
from dataclasses import replace

import httpx
import pytest

from backend.orders import service as orders
from backend.orders.tables import Order
from backend.payments import refunds
from backend.payments.numbers import out_refund_no
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import RefundResult, RefundState
from backend.payments.tables import PaymentRefund as Refund
from backend.points import service as points
from backend.points.effects import refund_key
from backend.points.tables import EntryKind, PointsEntry
from backend.sandbox import service as sandbox
from backend.sandbox.keys import load_sandbox_keys
from backend.sandbox.notify import SandboxNotifier
from backend.sandbox.tables import SandboxRefund, SandboxTrade
from backend.settings import Settings
from tests.cashier.test_till_checkout import ORDERS, payment_code, scan
from tests.conftest import member_login, staff_login

FAST = {"refund_query_interval_seconds": 0.05}


@pytest.fixture
def fast_settings() -> Settings:
    return replace(Settings.from_env(), **FAST)


@pytest.fixture
async def till(make_client, fast_settings):
    async with make_client(fast_settings) as client:
        yield client


async def refund(client, headers, order_id: int, amount: int, key: str, **extra) -> httpx.Response:
    return await client.post(
        f"{ORDERS}/{order_id}/refunds", headers=headers, json={"amountFen": amount, "idempotencyKey": key, **extra}
    )


async def paid_order(till, demo, openid: str, amount: int = 10_000, **extra) -> dict:
    cashier1 = await staff_login(till, "cashier1")
    response = await scan(
        till, cashier1, demo["S001"], await payment_code(till, openid), f"pay-{openid[-8:]}", amount=amount, **extra
    )
    assert response.status_code == 201 and response.json()["status"] == "paid", response.text
    return response.json()


async def test_partial_then_full_refund_moves_points_in_proportion(till, demo):
    openid = "oRefundMe0000000000000001"
    shopper = await member_login(till, openid=openid)
    member_id = shopper["member"]["id"]
    await points.adjust(member_id, 500, reason="start", idempotency_key="start-500")
    code = (await till.get("/api/v1/me/member-code", headers=shopper["headers"])).json()["code"]
    order = await paid_order(till, demo, openid, amount=10_100, memberCode=code, pointsToRedeem=100)
    assert (order["paidFen"], order["pointsEarned"]) == (10_000, 200)  # 2 points a yuan at S001
    assert await points.balance_of(member_id) == (500 - 100 + 200, 0)
    cashier1 = await staff_login(till, "cashier1")

    first = await refund(till, cashier1, order["id"], 4_000, "refund-0001", reason="two items back")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["status"], body["amountFen"], body["pointsReversed"], body["pointsRestored"]) == (
        "succeeded",
        4_000,
        80,
        40,
    )  # 40% of the 200 earned, 40% of the 100 redeemed
    assert body["outRefundNo"] == out_refund_no(order["outTradeNo"], "refund-0001")
    assert (await till.get(f"{ORDERS}/{order['id']}", headers=cashier1)).json()["status"] == "partially_refunded"
    assert await points.balance_of(member_id) == (600 - 80 + 40, 0)

    rest = await refund(till, cashier1, order["id"], 6_000, "refund-0002")
    assert (rest.status_code, rest.json()["pointsReversed"], rest.json()["pointsRestored"]) == (201, 120, 60)
    assert (await till.get(f"{ORDERS}/{order['id']}", headers=cashier1)).json()["status"] == "refunded"
    assert await points.balance_of(member_id) == (500, 0)  # as before the checkout
    kinds = [row["kind"] for row in await PointsEntry.select(PointsEntry.kind).order_by(PointsEntry.id)]
    assert kinds.count(EntryKind.earn) == 1  # reversed through the ledger, never an earn rule replayed
    assert (await SandboxTrade.select(SandboxTrade.refunded_fen).first())["refunded_fen"] == 10_000
    over = await refund(till, cashier1, order["id"], 1, "refund-0003")
    assert (over.status_code, over.json()["code"]) == (409, "cashier.order_not_refundable")


async def test_a_retried_refund_refunds_once(till, demo):
    order = await paid_order(till, demo, "oRetryRefund00000000000001")
    cashier1 = await staff_login(till, "cashier1")
    answers = await asyncio.gather(
        *(refund(till, cashier1, order["id"], 3_000, "refund-retry-1") for _ in range(3))
    )  # a double tap and a retry, all at once
    assert sorted(a.status_code for a in answers) == [200, 200, 201]
    assert len({a.json()["refundId"] for a in answers}) == 1
    later = await refund(till, cashier1, order["id"], 3_000, "refund-retry-1")
    assert later.status_code == 200 and later.json()["refundId"] == answers[0].json()["refundId"]
    assert await SandboxRefund.count() == 1 and await Refund.count() == 1
    conflict = await refund(till, cashier1, order["id"], 2_000, "refund-retry-1")
    assert (conflict.status_code, conflict.json()["code"]) == (409, "cashier.idempotency_conflict")
    row = await Order.select(Order.refunded_fen, Order.status).where(Order.id == order["id"]).first()
    assert row == {"refunded_fen": 3_000, "status": "partially_refunded"}


async def test_two_concurrent_sixty_percent_refunds_one_is_accepted(till, demo):
    order = await paid_order(till, demo, "oTwoRefunds000000000000001")
    cashier1 = await staff_login(till, "cashier1")
    answers = await asyncio.gather(
        refund(till, cashier1, order["id"], 6_000, "refund-sixty-a"),
        refund(till, cashier1, order["id"], 6_000, "refund-sixty-b"),
    )
    assert sorted(a.status_code for a in answers) == [201, 422]
    refused = next(a for a in answers if a.status_code == 422)
    assert refused.json()["code"] == "cashier.refund_exceeds_paid"
    assert refused.json()["details"]["refundableFen"] == 4_000
    assert await SandboxRefund.count() == 1
    assert (await SandboxTrade.select(SandboxTrade.refunded_fen).first())["refunded_fen"] == 6_000
    assert (await Order.select(Order.refunded_fen).first())["refunded_fen"] == 6_000


async def test_refunds_that_cannot_be_are_refused_and_change_nothing(till, demo):
    order = await paid_order(till, demo, "oBadRefunds000000000000001")
    cashier1, cashier2 = await staff_login(till, "cashier1"), await staff_login(till, "cashier2")
    shopper = await member_login(till, openid="oBadRefunds000000000000001")
    cases = [
        (await refund(till, cashier1, order["id"], 10_001, "refund-bad-01"), 422, "cashier.refund_exceeds_paid"),
        (await refund(till, cashier1, order["id"], 0, "refund-bad-02"), 422, "request.invalid"),
        (await refund(till, cashier1, order["id"], 100, "short"), 422, "request.invalid"),
        (await refund(till, cashier1, order["id"], 100, "refund-bad-03", pointsReversed=0), 422, "request.invalid"),
        (await refund(till, cashier2, order["id"], 100, "refund-bad-04"), 404, "cashier.order_not_found"),
        (await refund(till, cashier1, 999_999, 100, "refund-bad-05"), 404, "cashier.order_not_found"),
        (await refund(till, shopper["headers"], order["id"], 100, "refund-bad-06"), 403, "auth.forbidden"),
        (await refund(till, {}, order["id"], 100, "refund-bad-07"), 401, "auth.unauthenticated"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    failed = await scan(
        till,
        cashier1,
        demo["S001"],
        await payment_code(till, "oBadRefunds000000000000001", "insufficient_funds"),
        "pay-fails-0001",
    )
    unpaid = await refund(till, cashier1, failed.json()["id"], 100, "refund-bad-08")
    assert (unpaid.status_code, unpaid.json()["code"]) == (409, "cashier.order_not_refundable")
    assert await Refund.count() == 0 and await SandboxRefund.count() == 0
    assert (await Order.select(Order.refunded_fen).where(Order.id == order["id"]).first())["refunded_fen"] == 0


async def reversed_points(refund) -> int:
    return (await points.reversed_under(refund_key(refund.order, refund.id)))[0]


class Unreachable:
    """The refund call never reaches WeChat Pay."""

    def __init__(self, provider) -> None:
        self._provider = provider

    def __getattr__(self, name: str):
        return getattr(self._provider, name)

    async def refund(self, **call):
        raise httpx.ConnectTimeout("refund call timed out")


class AnswersProcessing(Unreachable):
    """WeChat Pay takes the refund and answers PROCESSING; the result comes later, by notification."""

    async def refund(self, **call):
        await self._provider.refund(**call)
        await SandboxRefund.update({SandboxRefund.status: "PROCESSING"}).where(
            SandboxRefund.out_refund_no == call["out_refund_no"]
        )
        return RefundResult(RefundState.processing)


async def test_a_refund_call_that_never_arrived_is_made_by_the_sweeper_once(
    till, demo, fast_settings, sandbox_provider
):
    order = await paid_order(till, demo, "oLostRefund000000000000001")
    policy = PaymentPolicy.from_settings(fast_settings)
    created, _ = await refunds.request_refund(
        await orders.find_order(order["id"]),
        staff_id=None,
        amount_fen=2_500,
        idempotency_key="refund-lost-1",
        reason="",
        provider=Unreachable(sandbox_provider),
        policy=policy,
    )
    assert created.status == "processing" and await SandboxRefund.count() == 0
    await asyncio.sleep(0.06)
    await refunds.advance_due(provider=sandbox_provider, policy=policy)  # not found there: asked for again
    settled = await refunds.find_refund(created.id)
    assert settled.status == "succeeded" and await reversed_points(settled) == 50
    await asyncio.sleep(0.06)
    assert await refunds.advance_due(provider=sandbox_provider, policy=policy) == 0
    assert await SandboxRefund.count() == 1


@pytest.mark.parametrize("status", ["SUCCESS", "ABNORMAL"])
async def test_a_refund_notification_settles_a_refund_in_progress(
    till, demo, fast_settings, sandbox_provider, caplog, status
):
    """SUCCESS settles it (the points follow); ABNORMAL keeps it under way, the money taken, for staff."""
    order = await paid_order(till, demo, f"oRefundNotice{status:0>13}")
    policy = PaymentPolicy.from_settings(fast_settings)
    created, _ = await refunds.request_refund(
        await orders.find_order(order["id"]),
        staff_id=None,
        amount_fen=10_000,
        idempotency_key="refund-notice-1",
        reason="",
        provider=AnswersProcessing(sandbox_provider),
        policy=policy,
    )
    assert created.status == "processing"
    row = await SandboxRefund.select().first()
    payload = {
        "mchid": sandbox_provider.mchid,
        "out_trade_no": order["outTradeNo"],
        "transaction_id": (await sandbox.find_trade(order["outTradeNo"]))["transaction_id"],
        "out_refund_no": row["out_refund_no"],
        "refund_id": row["refund_id"],
        "refund_status": status,
        "success_time": "2026-11-22T10:00:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 10_000, "refund": 10_000, "payer_total": 10_000, "payer_refund": 10_000},
    }
    notifier = SandboxNotifier(load_sandbox_keys(fast_settings.var_dir, fast_settings.secret_key), url="")
    headers, body = notifier.seal(f"REFUND.{status}", "refund", json.dumps(payload).encode())
    for _ in range(2):  # delivered, and delivered again
        response = await till.post("/api/v1/payments/wechat/notify", content=body, headers=headers)
        assert response.status_code == 204, response.text
    settled = await refunds.find_refund(created.id)
    if status == "ABNORMAL":
        assert (settled.status, settled.failure, settled.refund_id) == ("processing", "ABNORMAL", row["refund_id"])
        assert settled.next_query_at is not None  # still asked about, until someone finishes it
        assert any("refund abnormal" in record.getMessage() for record in caplog.records)
        assert (await Order.select(Order.status, Order.refunded_fen).first()) == {
            "status": "paid",
            "refunded_fen": 10_000,
        }
        assert await PointsEntry.count().where(PointsEntry.kind == EntryKind.reverse_earn) == 0
        return
    assert (settled.status, settled.refund_id, await reversed_points(settled)) == ("succeeded", row["refund_id"], 200)
    assert (await Order.select(Order.status).first())["status"] == "refunded"
    assert await PointsEntry.count().where(PointsEntry.kind == EntryKind.reverse_earn) == 1


async def test_an_abnormal_refund_stays_taken_until_it_closes(till, demo, fast_settings, sandbox_provider, caplog):
    order = await paid_order(till, demo, "oRefundFails00000000000001")
    policy = PaymentPolicy.from_settings(fast_settings)
    created, _ = await refunds.request_refund(
        await orders.find_order(order["id"]),
        staff_id=None,
        amount_fen=7_000,
        idempotency_key="refund-abnormal",
        reason="",
        provider=AnswersProcessing(sandbox_provider),
        policy=policy,
    )
    await SandboxRefund.update({SandboxRefund.status: "ABNORMAL"}).where(SandboxRefund.id > 0)
    await asyncio.sleep(0.06)
    await refunds.advance_due(provider=sandbox_provider, policy=policy)
    abnormal = await refunds.find_refund(created.id)
    assert (abnormal.status, abnormal.failure) == ("processing", "ABNORMAL")
    assert any("refund abnormal" in record.getMessage() for record in caplog.records)
    cashier1 = await staff_login(till, "cashier1")
    again = await refund(till, cashier1, order["id"], 7_000, "refund-abnormal-2")  # the money is not free to go
    assert (again.status_code, again.json()["code"]) == (422, "cashier.refund_exceeds_paid")

    await SandboxRefund.update({SandboxRefund.status: "CLOSED"}).where(SandboxRefund.id > 0)
    await asyncio.sleep(0.06)
    await refunds.advance_due(provider=sandbox_provider, policy=policy)
    assert (await refunds.find_refund(created.id)).status == "failed"
    assert (await Order.select(Order.refunded_fen, Order.status).first()) == {"refunded_fen": 0, "status": "paid"}
    assert await PointsEntry.count().where(PointsEntry.kind == EntryKind.reverse_earn) == 0
