"""Checkout at the till over HTTP, driving the sandbox wallet scenarios through the micropay state machine."""

import asyncio
import time
from dataclasses import replace

import httpx
import pytest

from backend.members.code import MemberCodes
from backend.members.tables import MemberMerge
from backend.orders import service as orders
from backend.orders.tables import Order
from backend.payments import refunds
from backend.payments import service as payments
from backend.payments.policy import PaymentPolicy
from backend.payments.tables import PaymentRefund as Refund
from backend.payments.tables import PaymentTrade
from backend.points import service as points
from backend.points.tables import PointsAccount, PointsEntry, PointsLot
from backend.sandbox.tables import SandboxTrade
from backend.settings import Settings
from tests.conftest import member_login, staff_login

ORDERS = "/api/v1/cashier/orders"
FAST = {"micropay_query_interval_seconds": 0.05, "micropay_timeout_seconds": 0.3, "micropay_inline_wait_seconds": 1.0}


@pytest.fixture
async def till(make_client):
    async with make_client(**FAST) as client:
        yield client


async def payment_code(client, openid: str, scenario: str = "success") -> str:
    response = await client.post(f"/api/v1/sandbox/wallets/{openid}/payment-codes", json={"scenario": scenario})
    return response.json()["authCode"]


async def scan(client, headers, store_id: int, auth_code: str, key: str, amount: int = 1234, **extra):
    return await client.post(
        ORDERS,
        headers=headers,
        json={"storeId": store_id, "amountFen": amount, "authCode": auth_code, "idempotencyKey": key, **extra},
    )


async def test_a_new_payer_leaves_as_a_member_with_points(till, demo):
    cashier1 = await staff_login(till, "cashier1")
    openid = "oNewShopper0000000000000001"
    response = await scan(till, cashier1, demo["S001"], await payment_code(till, openid), "checkout-0001")
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["status"], order["memberEnrolled"], order["pointsEarned"]) == ("paid", True, 24)  # 2 pts a yuan
    assert (order["paidFen"], order["payableFen"], order["discountFen"]) == (1234, 1234, 0)
    assert order["paidAt"] and len(order["outTradeNo"]) == 28 and order["kind"] == "till"
    # The account opened with the enrolment holds exactly what its one entry and one lot say.
    assert await books(order["memberId"]) == {
        "balance": 24,
        "debt": 0,
        "entries": [("earn", 24, 24)],
        "lots": [(24, 24)],
    }
    shopper = await member_login(till, openid=openid)  # the same WeChat user opens the mini-program
    assert shopper["isNew"] is False and shopper["member"]["id"] == order["memberId"]
    assert shopper["member"]["pointsBalance"] == 24 and shopper["member"]["enrolledVia"] == "cashier"
    assert shopper["member"]["enrolledStoreId"] == demo["S001"]
    # Paying at another store later: the same member, one balance.
    again = await scan(
        till,
        await staff_login(till, "cashier2"),
        demo["S002"],
        await payment_code(till, openid),
        "checkout-0002",
        amount=5000,
    )
    assert again.json()["memberId"] == order["memberId"] and again.json()["memberEnrolled"] is False
    assert await points.balance_of(order["memberId"]) == (124, 0)
    assert (await books(order["memberId"]))["entries"] == [("earn", 24, 24), ("earn", 100, 124)]


async def books(member_id: int) -> dict:
    account = await PointsAccount.select().where(PointsAccount.member == member_id).first()
    entries = await PointsEntry.select().where(PointsEntry.member == member_id).order_by(PointsEntry.id)
    lots = await PointsLot.select().where(PointsLot.member == member_id).order_by(PointsLot.id)
    return {
        "balance": account["balance"],
        "debt": account["debt"],
        "entries": [(e["kind"], e["delta"], e["balance_after"]) for e in entries],
        "lots": [(lot["points"], lot["remaining"]) for lot in lots],
    }


async def test_points_discount_the_amount_and_come_back_when_the_payment_fails(till, demo, settings):
    cashier1 = await staff_login(till, "cashier1")
    shopper = await member_login(till, openid="oRedeemer00000000000000001")
    member_id = shopper["member"]["id"]
    await points.adjust(member_id, 500, reason="start", idempotency_key="start-500")

    async def member_code() -> str:
        return (await till.get("/api/v1/me/member-code", headers=shopper["headers"])).json()["code"]

    failed = await scan(
        till,
        cashier1,
        demo["S001"],
        await payment_code(till, "oRedeemer00000000000000001", "insufficient_funds"),
        "checkout-0003",
        memberCode=await member_code(),
        pointsToRedeem=200,
    )
    assert failed.status_code == 201 and failed.json()["status"] == "failed"
    assert (failed.json()["paidFen"], failed.json()["payableFen"], failed.json()["failureReason"]) == (
        0,
        1034,
        "NOTENOUGH",
    )
    assert await points.balance_of(member_id) == (500, 0)  # the reserved points came back
    # The member code is spent; the previous step's code is another valid one the till has not seen.
    previous_step = MemberCodes(settings.secret_key).code_for(member_id, now=time.time() - 30)[0]
    paid = await scan(
        till,
        cashier1,
        demo["S001"],
        await payment_code(till, "oRedeemer00000000000000001"),
        "checkout-0004",
        memberCode=previous_step,
        pointsToRedeem=200,
    )
    body = paid.json()
    assert (body["status"], body["amountFen"], body["paidFen"], body["pointsRedeemed"]) == ("paid", 1234, 1034, 200)
    assert (body["discountFen"], body["payableFen"], body["failureReason"]) == (200, 1034, None)
    assert body["pointsEarned"] == 1034 * 2 // 100
    assert await points.balance_of(member_id) == (500 - 200 + 20, 0)


async def test_unknown_outcomes_are_queried_until_paid(till, demo):
    cashier1 = await staff_login(till, "cashier1")
    for key, scenario in (("checkout-0005", "password_then_success"), ("checkout-0006", "system_error_then_success")):
        response = await scan(
            till, cashier1, demo["S001"], await payment_code(till, "oPatient000000000000000001", scenario), key
        )
        assert response.json()["status"] == "paid", scenario
    assert await SandboxTrade.count().where(SandboxTrade.reversals > 0) == 0


async def test_a_stuck_payment_is_reversed_after_the_timeout_and_releases_points(make_client, demo, sandbox_provider):
    async with make_client(**{**FAST, "micropay_inline_wait_seconds": 0.1}) as till:
        cashier1 = await staff_login(till, "cashier1")
        response = await scan(
            till,
            cashier1,
            demo["S001"],
            await payment_code(till, "oStuck00000000000000000001", "password_timeout"),
            "checkout-0007",
        )
        assert response.json()["status"] == "paying"
        order_id = response.json()["id"]
        policy = PaymentPolicy.from_settings(replace(Settings.from_env(), **FAST))
        for _ in range(40):  # the sweeper's work, done here step by step
            await payments.advance_due(provider=sandbox_provider, policy=policy)
            if (await orders.find_order(order_id)).status != "paying":
                break
            await asyncio.sleep(0.05)
        order = (await till.get(f"{ORDERS}/{order_id}", headers=cashier1)).json()
        assert order["status"] == "cancelled" and order["memberId"] is None and order["failureReason"] == "REVERSED"
        assert (order["paidFen"], order["payableFen"]) == (0, 1234)
        trade = await SandboxTrade.select(SandboxTrade.state, SandboxTrade.reversals).first()
        assert trade == {"state": "REVOKED", "reversals": 2}  # the provider asked for one recall


async def test_success_at_the_last_query_wins_over_the_reversal(make_client, demo):
    async with make_client(**{**FAST, "micropay_timeout_seconds": 0.0, "micropay_inline_wait_seconds": 1.0}) as till:
        response = await scan(
            till,
            await staff_login(till, "cashier1"),
            demo["S001"],
            await payment_code(till, "oLastMoment0000000000000001", "system_error_then_success"),
            "checkout-0008",
        )
        assert response.json()["status"] == "paid"
    assert await SandboxTrade.count().where(SandboxTrade.reversals > 0) == 0


async def test_a_double_scan_is_one_order_and_one_payment(till, demo):
    cashier1 = await staff_login(till, "cashier1")
    code = await payment_code(till, "oDoubleScan000000000000001")
    responses = await asyncio.gather(*(scan(till, cashier1, demo["S001"], code, "checkout-0009") for _ in range(5)))
    assert {r.json()["id"] for r in responses} == {responses[0].json()["id"]}
    assert {r.json()["status"] for r in responses} == {"paid"}
    assert sorted(r.status_code for r in responses) == [200] * 4 + [201]  # created once, replayed four times
    assert await SandboxTrade.count() == 1 and await Order.count() == 1 and await PaymentTrade.count() == 1
    assert await PointsEntry.count() == 1  # points earned once
    changed = await scan(till, cashier1, demo["S001"], code, "checkout-0009", amount=999)
    assert changed.status_code == 409 and changed.json()["code"] == "cashier.idempotency_conflict"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"authCode": "281234567890123456"}, "cashier.provider_unsupported"),
        ({"authCode": "891234567890123456"}, "cashier.invalid_payment_code"),
        ({"authCode": "13123456789012345"}, "cashier.invalid_payment_code"),
        ({"amountFen": 0}, "request.invalid"),
        ({"amountFen": 1.5}, "request.invalid"),
        ({"amountFen": 5_000_001}, "cashier.amount_out_of_range"),
        ({"pointsToRedeem": 100}, "cashier.points_need_member"),
        ({"idempotencyKey": "short"}, "request.invalid"),
        ({"status": "paid"}, "request.invalid"),
    ],
)
async def test_bad_checkouts_are_refused_before_any_payment(till, demo, body, code):
    cashier1 = await staff_login(till, "cashier1")
    request = {
        "storeId": demo["S001"],
        "amountFen": 1234,
        "authCode": "134567890123456789",
        "idempotencyKey": "checkout-bad1",
        **body,
    }
    response = await till.post(ORDERS, json=request, headers=cashier1)
    assert response.status_code == 422 and response.json()["code"] == code
    assert await Order.count() == 0 and await SandboxTrade.count() == 0


async def test_orders_belong_to_their_store(till, demo):
    cashier1, cashier2 = await staff_login(till, "cashier1"), await staff_login(till, "cashier2")
    code = await payment_code(till, "oScoped000000000000000001")
    elsewhere = await scan(till, cashier2, demo["S001"], code, "checkout-0010")
    assert elsewhere.status_code == 404
    order = (await scan(till, cashier1, demo["S001"], code, "checkout-0011")).json()
    assert (await till.get(f"{ORDERS}/{order['id']}", headers=cashier2)).status_code == 404
    assert (await till.get(f"{ORDERS}/{order['id']}", headers=cashier1)).json()["status"] == "paid"
    shopper = await member_login(till)
    assert (await till.get(f"{ORDERS}/{order['id']}", headers=shopper["headers"])).status_code == 403
    assert (await till.post(f"{ORDERS}/{order['id']}/cancel", headers=cashier1)).status_code == 409


async def test_the_cashier_cancels_a_payment_still_under_way(make_client, demo):
    async with make_client(**{**FAST, "micropay_inline_wait_seconds": 0.0}) as till:
        cashier1 = await staff_login(till, "cashier1")
        order = (
            await scan(
                till,
                cashier1,
                demo["S001"],
                await payment_code(till, "oGivesUp00000000000000001", "password_timeout"),
                "checkout-0012",
            )
        ).json()
        assert order["status"] == "paying"
        cancelled = await till.post(f"{ORDERS}/{order['id']}/cancel", headers=cashier1)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = await till.post(f"{ORDERS}/{order['id']}/cancel", headers=cashier1)
        assert again.status_code == 200 and again.json()["status"] == "cancelled"


class RefundUnanswered:
    def __init__(self, provider) -> None:
        self._provider = provider

    def __getattr__(self, name: str):
        return getattr(self._provider, name)

    async def refund(self, **call):
        raise httpx.ConnectError("refund did not get through")


class PaidAsStaffCancel(RefundUnanswered):
    """WeChat Pay's side as a cashier cancels: the shopper enters their password, and the checkout's own
    query records the payment, between the cancel's query and its reversal (and, if `refund_meanwhile`,
    someone asks for a refund of it that has not got through yet)."""

    def __init__(self, provider, trade_id: int, policy: PaymentPolicy, refund_meanwhile: int = 0) -> None:
        super().__init__(provider)
        self._trade_id, self._policy, self._refund_meanwhile = trade_id, policy, refund_meanwhile

    async def reverse(self, out_trade_no: str):
        await SandboxTrade.update({SandboxTrade.state: "SUCCESS"}).where(SandboxTrade.out_trade_no == out_trade_no)
        answer = await self._provider.query(out_trade_no)
        paid = await payments.settle_paid(
            self._trade_id,
            transaction_id=answer.transaction_id,
            payer_openid=answer.payer_openid,
            amount_fen=answer.amount_fen,
            policy=self._policy,
        )
        if self._refund_meanwhile:
            await refunds.request_refund(
                paid,
                amount_fen=self._refund_meanwhile,
                idempotency_key="refund-in-flight",
                reason="",
                staff_id=None,
                provider=RefundUnanswered(self._provider),
                policy=self._policy,
            )
        return await self._provider.reverse(out_trade_no)


@pytest.mark.parametrize("refund_meanwhile", [0, 400])
async def test_a_payment_reversed_just_after_it_was_recorded_paid_is_refunded_in_full(
    make_client, demo, sandbox_provider, refund_meanwhile
):
    async with make_client(**{**FAST, "micropay_inline_wait_seconds": 0.0}) as till:
        cashier1 = await staff_login(till, "cashier1")
        code = await payment_code(till, f"oPaidAsCancelled{refund_meanwhile:0>9}", "password_then_success")
        order = (await scan(till, cashier1, demo["S001"], code, "checkout-0040")).json()
        assert order["status"] == "paying"
        trade = await payments.trade_of(order["id"])
        policy = PaymentPolicy.from_settings(replace(Settings.from_env(), **FAST))
        provider = PaidAsStaffCancel(sandbox_provider, trade.id, policy, refund_meanwhile)
        await payments.cancel(trade.id, provider=provider, policy=policy)

        after = (await till.get(f"{ORDERS}/{order['id']}", headers=cashier1)).json()
        assert (after["status"], after["paidFen"], after["refundedFen"]) == ("refunded", 1234, 1234)
        assert await points.balance_of(after["memberId"]) == (0, 0)  # earned on the payment, reversed with it
        assert (await payments.trade_of(order["id"])).status.value == "reversed"
        found = await Refund.select(Refund.kind, Refund.status, Refund.amount_fen, Refund.failure).order_by(Refund.id)
        reversal = {"kind": "reversal", "status": "succeeded", "amount_fen": 1234, "failure": ""}
        if refund_meanwhile:  # it can no longer come: the whole payment went back with the reversal
            assert found == [
                {"kind": "requested", "status": "failed", "amount_fen": 400, "failure": "REVERSED"},
                reversal,
            ]
        else:
            assert found == [reversal]
        wechat = await SandboxTrade.select(SandboxTrade.state).where(SandboxTrade.out_trade_no == trade.out_trade_no)
        assert wechat == [{"state": "REVOKED"}]  # the money is back with the shopper, as the order says


async def test_one_new_payer_at_two_tills_at_once_becomes_one_member(till, demo):
    cashier1, cashier2 = await staff_login(till, "cashier1"), await staff_login(till, "cashier2")
    openid = "oTwoTillsAtOnce00000000001"
    codes = [await payment_code(till, openid), await payment_code(till, openid)]
    responses = await asyncio.gather(
        scan(till, cashier1, demo["S001"], codes[0], "checkout-0013"),
        scan(till, cashier2, demo["S002"], codes[1], "checkout-0014"),
    )
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    orders = [r.json() for r in responses]
    assert {o["status"] for o in orders} == {"paid"}
    assert orders[0]["memberId"] == orders[1]["memberId"]
    assert sorted(o["memberEnrolled"] for o in orders) == [False, True]
    assert await points.balance_of(orders[0]["memberId"]) == (48, 0)


async def test_shoppers_see_their_orders_and_a_merge_brings_them_along(till, demo):
    cashier1 = await staff_login(till, "cashier1")
    openid = "oOrdersShopper00000000001"
    for i in range(3):
        await scan(
            till, cashier1, demo["S001"], await payment_code(till, openid), f"checkout-10{i:02d}", amount=100 * (i + 1)
        )
    shopper = await member_login(till, openid=openid)
    page = (await till.get("/api/v1/me/orders", params={"limit": 2}, headers=shopper["headers"])).json()
    assert [o["amountFen"] for o in page["items"]] == [300, 200] and page["nextCursor"]
    rest = (
        await till.get("/api/v1/me/orders", params={"cursor": page["nextCursor"]}, headers=shopper["headers"])
    ).json()
    assert [o["amountFen"] for o in rest["items"]] == [100] and rest["nextCursor"] is None
    other = await member_login(till)
    assert (await till.get("/api/v1/me/orders", headers=other["headers"])).json()["items"] == []
    # HQ folds the till shopper into an older member: the orders follow.
    hq = await staff_login(till, "hq")
    older = await member_login(till)
    merged = await till.post(
        "/api/v1/admin/members/merge",
        headers=hq,
        json={"survivorId": older["member"]["id"], "mergedId": shopper["member"]["id"]},
    )
    assert merged.status_code == 200
    survivor_orders = (await till.get("/api/v1/me/orders", headers=older["headers"])).json()["items"]
    assert sorted(o["amountFen"] for o in survivor_orders) == [100, 200, 300]
    assert (await MemberMerge.select(MemberMerge.orders_moved).first())["orders_moved"] == 3
