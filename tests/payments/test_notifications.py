"""Store-code payments and WeChat Pay notifications: paid only by a verified notification or a query, exactly once."""

import asyncio
import base64
import json
import secrets
import sqlite3
import time
from dataclasses import replace
from datetime import timedelta

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from backend.core.clock import utcnow
from backend.orders import service as orders
from backend.orders.tables import Order
from backend.payments import refunds
from backend.payments import service as payments
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import ProviderError
from backend.payments.tables import PaymentRefund as Refund
from backend.payments.tables import PaymentTrade
from backend.payments.wechatpay_protocol import encrypt_resource, pay_sign_message, signed_headers
from backend.points import service as points
from backend.points.tables import EntryKind, PointsEntry
from backend.sandbox import service as sandbox
from backend.sandbox.keys import load_sandbox_keys
from backend.sandbox.notify import SandboxNotifier, transaction_payload
from backend.sandbox.tables import SandboxRefund, SandboxTrade
from backend.settings import Settings, sqlite_path
from backend.sweeper import sweep_once
from tests.conftest import member_login, staff_login

NOTIFY = "/api/v1/payments/wechat/notify"
FAST = {
    "store_payment_query_interval_seconds": 0.05,
    "store_payment_close_after_seconds": 1.0,
    "refund_query_interval_seconds": 0.05,
}


@pytest.fixture
def fast_settings() -> Settings:
    return replace(Settings.from_env(), **FAST)


@pytest.fixture
async def app_client(make_client, fast_settings):
    async with make_client(fast_settings) as client:
        yield client


@pytest.fixture
def notifier(fast_settings) -> SandboxNotifier:
    """WeChat Pay's side, holding the sandbox platform key and APIv3 key, but delivering nothing by itself."""
    return SandboxNotifier(load_sandbox_keys(fast_settings.var_dir, fast_settings.secret_key), url=NOTIFY)


async def pay_at_store(client, store_id: int, shopper: dict, amount: int = 2000, **extra) -> httpx.Response:
    return await client.post(
        f"/api/v1/stores/{store_id}/payments", headers=shopper["headers"], json={"amountFen": amount, **extra}
    )


async def started_payment(client, demo, openid: str, amount: int = 2000) -> tuple[dict, dict]:
    shopper = await member_login(client, openid=openid)
    response = await pay_at_store(client, demo["S001"], shopper, amount)
    assert response.status_code == 201, response.text
    return shopper, response.json()


async def paid_trade(out_trade_no: str) -> dict:
    """The shopper confirms in WeChat, and the notification is lost on the way."""
    trade = await sandbox.pay_prepay(out_trade_no)
    assert trade is not None
    return trade


def sealed(
    notifier: SandboxNotifier, trade: dict, *, timestamp: int | None = None, **changes: object
) -> tuple[dict, bytes]:
    payload = {
        **transaction_payload(trade, mchid=notifier.keys.mchid, appid=Settings.from_env().wechat_app_id),
        **changes,
    }
    return notifier.seal("TRANSACTION.SUCCESS", "transaction", json.dumps(payload).encode(), timestamp=timestamp)


async def post(client, message: tuple[dict, bytes]) -> httpx.Response:
    headers, body = message
    return await client.post(NOTIFY, content=body, headers=headers)


async def order_row(order_id: int) -> dict:
    """The order as stored, with its trade's next step."""
    order = await orders.find_order(order_id)
    trade = await payments.trade_of(order_id)
    return {**{name: getattr(order, name) for name in order.__slots__}, "next_query_at": trade.next_query_at}


async def test_a_store_code_payment_is_paid_by_the_notification_the_sandbox_sends(
    app_client, demo, notifier, fast_settings
):
    shopper, started = await started_payment(app_client, demo, "oStoreCode0000000000000001")
    assert (started["status"], started["payableFen"], started["paidFen"]) == ("paying", 2000, 0)
    params = started["payParams"]
    assert params["appId"] == fast_settings.wechat_app_id and params["signType"] == "RSA"
    assert params["package"].startswith("prepay_id=wx")
    message = pay_sign_message(
        app_id=params["appId"], timestamp=int(params["timeStamp"]), nonce=params["nonceStr"], package=params["package"]
    )
    notifier.keys.merchant_key.public_key().verify(
        base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256()
    )  # raises if the paySign is wrong
    # The mini-program saying "paid" changes nothing: only WeChat Pay's word counts.
    assert (await order_row(started["orderId"]))["status"] == "paying"

    confirmed = await app_client.post(f"/api/v1/sandbox/payments/{started['outTradeNo']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["notifyStatus"] == 204
    order = await order_row(started["orderId"])
    assert (order["status"], order["member"], order["points_earned"]) == ("paid", shopper["member"]["id"], 40)
    assert await points.balance_of(shopper["member"]["id"]) == (40, 0)
    mine = (await app_client.get("/api/v1/me/orders", headers=shopper["headers"])).json()["items"]
    assert [(o["id"], o["status"]) for o in mine] == [(started["orderId"], "paid")]
    again = await app_client.post(f"/api/v1/sandbox/payments/{started['outTradeNo']}/confirm")
    assert again.status_code == 409 and again.json()["code"] == "sandbox.trade_not_payable"


async def test_duplicate_notifications_pay_once_and_earn_once(app_client, demo, notifier):
    shopper, started = await started_payment(app_client, demo, "oDuplicates000000000000001", amount=5000)
    trade = await paid_trade(started["outTradeNo"])
    message = sealed(notifier, trade)
    first = await asyncio.gather(*(post(app_client, message) for _ in range(3)))  # the same delivery, at once
    later = [await post(app_client, sealed(notifier, trade)) for _ in range(2)]  # WeChat's retries, sealed anew
    assert [r.status_code for r in first + later] == [204] * 5
    order = await order_row(started["orderId"])
    assert (order["status"], order["points_earned"]) == ("paid", 100)
    earned = await PointsEntry.count().where(PointsEntry.kind == EntryKind.earn)
    assert earned == 1 and await points.balance_of(shopper["member"]["id"]) == (100, 0)


def _tampered(notifier: SandboxNotifier, trade: dict, how: str) -> tuple[dict, bytes]:
    """A notification that must not be believed, each the way an attacker or a broken proxy would make it."""
    keys = notifier.keys
    # Ten seconds past the ±5 minute window: time passing while the request travels cannot bring it back in.
    if how == "stale_timestamp":
        return sealed(notifier, trade, timestamp=int(time.time()) - 310)
    if how == "future_timestamp":
        return sealed(notifier, trade, timestamp=int(time.time()) + 310)
    headers, body = sealed(notifier, trade)
    if how == "signature_probe":
        return {**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]}, body
    if how == "reserialised_body":
        return headers, json.dumps(json.loads(body), indent=2).encode()
    if how == "unknown_serial":
        return {**headers, "Wechatpay-Serial": "PUB_KEY_ID_0000000000000000000000000000"}, body
    if how == "missing_signature":
        return {k: v for k, v in headers.items() if k != "Wechatpay-Signature"}, body
    # Correctly signed envelopes around a resource that must not open: only the APIv3 key can seal one.
    envelope = json.loads(body)
    resource = envelope["resource"]
    if how == "flipped_ciphertext_bit":
        raw = bytearray(base64.b64decode(resource["ciphertext"]))
        raw[5] ^= 0x01
        resource["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    elif how == "wrong_associated_data":
        resource["associated_data"] = "refund"
    elif how == "wrong_api_v3_key":
        payload = json.dumps(transaction_payload(trade, mchid=keys.mchid, appid="x")).encode()
        other = encrypt_resource(
            secrets.token_hex(16).encode(), payload, nonce=resource["nonce"], associated_data="transaction"
        )
        resource["ciphertext"] = other.ciphertext
    body = json.dumps(envelope).encode()
    return {
        **signed_headers(
            keys.platform_key, keys.platform_serial, body, timestamp=int(time.time()), nonce=secrets.token_hex(16)
        ),
        "Content-Type": "application/json",
    }, body


@pytest.mark.parametrize(
    "how",
    [
        "stale_timestamp",
        "future_timestamp",
        "signature_probe",
        "reserialised_body",
        "unknown_serial",
        "missing_signature",
        "flipped_ciphertext_bit",
        "wrong_associated_data",
        "wrong_api_v3_key",
    ],
)
async def test_a_notification_that_does_not_verify_changes_nothing(app_client, demo, notifier, how, caplog):
    shopper, started = await started_payment(app_client, demo, "oTampered00000000000000001")
    trade = await paid_trade(started["outTradeNo"])
    response = await post(app_client, _tampered(notifier, trade, how))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "payments.verification_failed"
    assert (await order_row(started["orderId"]))["status"] == "paying"
    assert await PointsEntry.count() == 0
    assert any(record.getMessage() == "notification rejected" for record in caplog.records)
    # The genuine notification still works afterwards.
    assert (await post(app_client, sealed(notifier, trade))).status_code == 204
    assert (await order_row(started["orderId"]))["status"] == "paid"


@pytest.mark.parametrize(
    "change, code",
    [
        ({"amount": {"total": 1999, "payer_total": 1999, "currency": "CNY"}}, "payments.amount_mismatch"),
        ({"amount": {"total": 2001, "payer_total": 2001, "currency": "CNY"}}, "payments.amount_mismatch"),
        ({"mchid": "1900000999"}, "payments.merchant_mismatch"),
        ({"appid": "wx-someone-else"}, "payments.merchant_mismatch"),
    ],
)
async def test_a_verified_notification_that_disagrees_with_the_order_changes_nothing(
    app_client, demo, notifier, change, code, caplog
):
    shopper, started = await started_payment(app_client, demo, "oMismatch00000000000000001")
    trade = await paid_trade(started["outTradeNo"])
    response = await post(app_client, sealed(notifier, trade, **change))
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert (await order_row(started["orderId"]))["status"] == "paying"
    assert await PointsEntry.count() == 0
    assert any(record.levelname == "ERROR" for record in caplog.records)


async def test_a_float_or_string_amount_is_not_money(app_client, demo, notifier):
    shopper, started = await started_payment(app_client, demo, "oFloatAmount00000000000001")
    trade = await paid_trade(started["outTradeNo"])
    for total in (2000.0, "2000"):
        response = await post(app_client, sealed(notifier, trade, amount={"total": total, "currency": "CNY"}))
        assert response.status_code == 401 and response.json()["details"]["reason"] == "malformed_amount"
    assert (await order_row(started["orderId"]))["status"] == "paying"


async def test_a_notification_for_a_trade_we_do_not_have_is_refused(app_client, notifier):
    trade = {
        "out_trade_no": "20261122000000NoSuchOrder0",
        "transaction_id": "4200000000000000000000000000",
        "trade_type": "JSAPI",
        "openid": "oNobody",
        "amount_fen": 100,
    }
    response = await post(app_client, sealed(notifier, trade))
    assert (response.status_code, response.json()["code"]) == (404, "payments.unknown_trade")


async def test_a_lost_notification_still_ends_paid_by_the_sweepers_query(
    app_client, demo, fast_settings, sandbox_provider
):
    shopper, started = await started_payment(app_client, demo, "oLostNotice000000000000001")
    confirmed = await app_client.post(
        f"/api/v1/sandbox/payments/{started['outTradeNo']}/confirm", json={"deliverNotification": False}
    )
    assert confirmed.json()["notifyStatus"] is None
    assert (await order_row(started["orderId"]))["status"] == "paying"
    await asyncio.sleep(0.1)  # the next query is due
    await sweep_once(provider=sandbox_provider, policy=PaymentPolicy.from_settings(fast_settings))
    order = await order_row(started["orderId"])
    assert (order["status"], order["points_earned"]) == ("paid", 40)
    assert await points.balance_of(shopper["member"]["id"]) == (40, 0)


async def sweep_until(predicate, provider, settings, *, rounds: int = 60) -> None:
    policy = PaymentPolicy.from_settings(settings)
    for _ in range(rounds):
        await sweep_once(provider=provider, policy=policy)
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the sweeper did not get there")


async def test_an_unpaid_store_code_order_is_closed_and_its_points_come_back(
    app_client, demo, fast_settings, sandbox_provider
):
    shopper = await member_login(app_client, openid="oNeverPays0000000000000001")
    member_id = shopper["member"]["id"]
    await points.adjust(member_id, 300, reason="start", idempotency_key="start-300")
    response = await pay_at_store(app_client, demo["S001"], shopper, 2000, pointsToRedeem=200)
    assert response.status_code == 201, response.text
    started = response.json()
    assert (started["payableFen"], started["paidFen"], started["pointsRedeemed"]) == (1800, 0, 200)
    assert await points.balance_of(member_id) == (100, 0)  # reserved with the order

    async def closed() -> bool:
        return (await order_row(started["orderId"]))["status"] == "cancelled"

    await sweep_until(closed, sandbox_provider, fast_settings)
    assert (await SandboxTrade.select(SandboxTrade.state).first())["state"] == "CLOSED"
    assert await points.balance_of(member_id) == (300, 0)
    late = await app_client.post(f"/api/v1/sandbox/payments/{started['outTradeNo']}/confirm")
    assert late.status_code == 409  # WeChat Pay takes no money for a closed order


async def keep_payable(out_trade_no: str) -> None:
    """The shopper opened WeChat's payment sheet before the deadline and is still in it."""
    await SandboxTrade.update({SandboxTrade.expires_at: SandboxTrade.expires_at + timedelta(minutes=5)}).where(
        SandboxTrade.out_trade_no == out_trade_no
    )


class CloseFails:
    """WeChat Pay unreachable for the close: the order ends on our side, and WeChat Pay may still take money."""

    def __init__(self, provider) -> None:
        self._provider = provider

    def __getattr__(self, name: str):
        return getattr(self._provider, name)

    async def close(self, out_trade_no: str):
        raise httpx.ConnectError("close did not get through")


class PaidDuringClose(CloseFails):
    """The shopper pays in the instant between our last query and the close."""

    async def close(self, out_trade_no: str):
        await keep_payable(out_trade_no)
        assert await sandbox.pay_prepay(out_trade_no) is not None
        return await self._provider.close(out_trade_no)


async def test_a_notification_for_a_closed_order_is_refunded_automatically(
    app_client, demo, fast_settings, sandbox_provider
):
    shopper, started = await started_payment(app_client, demo, "oPaysTooLate00000000000001")

    async def closed() -> bool:
        return (await order_row(started["orderId"]))["status"] == "cancelled"

    await sweep_until(closed, CloseFails(sandbox_provider), fast_settings)
    await keep_payable(started["outTradeNo"])
    confirmed = await app_client.post(f"/api/v1/sandbox/payments/{started['outTradeNo']}/confirm")
    assert confirmed.json()["notifyStatus"] == 204
    order = await order_row(started["orderId"])
    assert (order["status"], order["refunded_fen"], order["points_earned"]) == ("refunded", 2000, 0)
    assert await Refund.count() == 1 and (await Refund.select(Refund.status, Refund.kind).first()) == {
        "status": "succeeded",
        "kind": "late_payment",
    }
    trade = await SandboxTrade.select(SandboxTrade.state, SandboxTrade.refunded_fen).first()
    assert trade == {"state": "REFUND", "refunded_fen": 2000}
    # WeChat Pay notifies again: nothing more happens.
    trade_row = await sandbox.find_trade(started["outTradeNo"])
    notifier = SandboxNotifier(load_sandbox_keys(fast_settings.var_dir, fast_settings.secret_key), url=NOTIFY)
    assert (await post(app_client, sealed(notifier, trade_row))).status_code == 204
    assert await SandboxRefund.count() == 1 and await PointsEntry.count() == 0
    assert await points.balance_of(shopper["member"]["id"]) == (0, 0)


class Unanswered(CloseFails):
    async def query(self, out_trade_no: str):
        raise httpx.ConnectError("query did not get through")


class RefundUnanswered(CloseFails):
    async def refund(self, **request):
        raise httpx.ConnectError("refund did not get through")


class RefundRefused(CloseFails):
    async def refund(self, **request):
        raise ProviderError("NOT_ENOUGH", "基本账户余额不足")


async def test_money_after_the_close_is_counted_on_its_order_only_once_it_is_back(
    app_client, demo, fast_settings, sandbox_provider, caplog
):
    """A cancelled order received nothing: money that lands on it is owed back, and shows on the order (paid,
    and refunded) only once it is back with the payer; a refusal leaves it owed, for staff to return."""
    shopper, started = await started_payment(app_client, demo, "oOwedBack00000000000000001")

    async def cancelled() -> bool:
        return (await order_row(started["orderId"]))["status"] == "cancelled"

    await sweep_until(cancelled, CloseFails(sandbox_provider), fast_settings)
    await keep_payable(started["outTradeNo"])
    paid = await sandbox.pay_prepay(started["outTradeNo"])
    trade = await payments.trade_of(started["orderId"])
    policy = PaymentPolicy.from_settings(fast_settings)
    await refunds.refund_late_payment(
        trade.id, transaction_id=paid["transaction_id"], provider=RefundUnanswered(sandbox_provider), policy=policy
    )
    mine = f"/api/v1/me/orders/{started['orderId']}"
    shown = (await app_client.get(mine, headers=shopper["headers"])).json()
    assert (shown["status"], shown["paidFen"], shown["refundedFen"]) == ("cancelled", 0, 0)
    assert (await Refund.select(Refund.status, Refund.kind).first()) == {"status": "processing", "kind": "late_payment"}

    await asyncio.sleep(0.06)  # the refund's query is due
    await refunds.advance_due(provider=RefundRefused(sandbox_provider), policy=policy)
    shown = (await app_client.get(mine, headers=shopper["headers"])).json()
    assert (shown["status"], shown["paidFen"], shown["refundedFen"]) == ("cancelled", 0, 0)
    assert (await Refund.select(Refund.status, Refund.failure).first()) == {"status": "failed", "failure": "NOT_ENOUGH"}
    assert "return it from the merchant platform" in caplog.text
    assert await PointsEntry.count() == 0


async def test_a_payment_whose_notification_is_lost_after_a_failed_close_is_still_refunded(
    app_client, demo, fast_settings, sandbox_provider
):
    shopper, started = await started_payment(app_client, demo, "oLostAfterClose00000000001")

    async def cancelled() -> bool:
        return (await order_row(started["orderId"]))["status"] == "cancelled"

    await sweep_until(cancelled, CloseFails(sandbox_provider), fast_settings)
    assert (await order_row(started["orderId"]))["next_query_at"] is not None  # the close is still owed
    await keep_payable(started["outTradeNo"])
    lost = await app_client.post(
        f"/api/v1/sandbox/payments/{started['outTradeNo']}/confirm", json={"deliverNotification": False}
    )
    assert lost.json()["notifyStatus"] is None

    async def refunded() -> bool:
        return (await order_row(started["orderId"]))["status"] == "refunded"

    await sweep_until(refunded, sandbox_provider, fast_settings)  # WeChat Pay answers again
    order = await order_row(started["orderId"])
    assert (order["refunded_fen"], order["next_query_at"], order["points_earned"]) == (2000, None, 0)
    assert await SandboxRefund.count() == 1
    await sweep_once(provider=sandbox_provider, policy=PaymentPolicy.from_settings(fast_settings))
    assert await SandboxRefund.count() == 1


async def test_money_that_arrives_as_the_order_closes_goes_back(app_client, demo, fast_settings, sandbox_provider):
    shopper, started = await started_payment(app_client, demo, "oPaysAtClose00000000000001")

    async def refunded() -> bool:
        return (await order_row(started["orderId"]))["status"] == "refunded"

    await sweep_until(refunded, PaidDuringClose(sandbox_provider), fast_settings)
    assert await SandboxRefund.count() == 1 and await PointsEntry.count() == 0
    assert (await SandboxTrade.select(SandboxTrade.refunded_fen).first())["refunded_fen"] == 2000


async def test_a_cashier_cancels_a_store_code_payment_under_way_and_wechat_pay_takes_no_money_for_it(app_client, demo):
    shopper, started = await started_payment(app_client, demo, "oStoreCodeCancel0000000001")
    cashier1 = await staff_login(app_client, "cashier1")
    cancelled = await app_client.post(f"/api/v1/cashier/orders/{started['orderId']}/cancel", headers=cashier1)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["failureReason"]) == ("cancelled", "CANCELLED")
    assert (await sandbox.find_trade(started["outTradeNo"]))["state"] == "CLOSED"
    late = await app_client.post(f"/api/v1/sandbox/payments/{started['outTradeNo']}/confirm")
    assert late.status_code == 409  # closed at WeChat Pay: the shopper can no longer pay it
    assert (await order_row(started["orderId"]))["paid_fen"] == 0
    assert await points.balance_of(shopper["member"]["id"]) == (0, 0)


async def test_bad_store_payments_are_refused_before_any_provider_call(app_client, demo):
    shopper = await member_login(app_client, openid="oBadInput00000000000000001")
    store = demo["S001"]
    cases = [
        (await pay_at_store(app_client, store, shopper, 0), 422, "request.invalid"),
        (await pay_at_store(app_client, store, shopper, 100, unexpected=1), 422, "request.invalid"),
        (await pay_at_store(app_client, store, shopper, 5_000_001), 422, "cashier.amount_out_of_range"),
        (await pay_at_store(app_client, 999_999, shopper, 100), 404, "cashier.store_not_found"),
        (await pay_at_store(app_client, store, shopper, 100, pointsToRedeem=150), 422, "cashier.points_not_exact"),
        (await pay_at_store(app_client, store, shopper, 1000, pointsToRedeem=100), 409, "points.insufficient"),
        (
            await app_client.post(f"/api/v1/stores/{store}/payments", json={"amountFen": 100}),
            401,
            "auth.unauthenticated",
        ),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    hq = await app_client.post("/api/v1/auth/staff/login", json={"username": "hq", "password": "correct-horse-battery"})
    staff = await app_client.post(
        f"/api/v1/stores/{store}/payments",
        json={"amountFen": 100},
        headers={"Authorization": f"Bearer {hq.json()['accessToken']}"},
    )
    assert staff.status_code == 403
    assert await SandboxTrade.count() == 0 and await Order.count() == 0


async def test_an_unpaid_mini_program_trade_is_asked_about_less_and_less_often_and_at_its_deadline(
    app_client, demo, sandbox_provider
):
    policy = PaymentPolicy(jsapi_query_interval=60.0, jsapi_pay_within=3600.0)
    _, started = await started_payment(app_client, demo, "oBackoff000000000000000001")
    trade = await payments.trade_of(started["orderId"])
    assert (trade.next_query_at - trade.created_at).total_seconds() == pytest.approx(0.05, abs=0.01)  # FAST

    async def asked_at_age(age: float, provider=sandbox_provider) -> float:
        """The trade is `age` seconds old and its query is due: how long until the next one."""
        created = utcnow() - timedelta(seconds=age)
        await PaymentTrade.update(
            {
                PaymentTrade.created_at: created,
                PaymentTrade.expires_at: created + timedelta(seconds=3600),
                PaymentTrade.next_query_at: created,
            }
        ).where(PaymentTrade.id == trade.id)
        before = utcnow()
        await payments.advance(trade.id, provider=provider, policy=policy)
        after = await payments.trade_of(started["orderId"])
        assert after.status.value == "paying"  # the shopper has not paid: asked, and still open
        return (after.next_query_at - before).total_seconds()

    assert await asked_at_age(60) == pytest.approx(60, abs=1)
    assert await asked_at_age(120) == pytest.approx(120, abs=1)  # doubling: at 4, 8, 16 minutes...
    assert await asked_at_age(960) == pytest.approx(960, abs=1)
    assert await asked_at_age(3000) == pytest.approx(600, abs=1)  # ...but never past the deadline
    # Past it, WeChat Pay not answering, the close is owed: asked every interval again, not at its doubled age.
    assert await asked_at_age(3700, Unanswered(sandbox_provider)) == pytest.approx(60, abs=1)


async def test_a_notification_the_database_cannot_take_in_time_is_answered_503_and_taken_when_sent_again(
    make_client, demo, notifier, fast_settings
):
    """The embedded database locked by another process (PostgreSQL: the trade's row locked by another
    transaction): the notify answers within its budget, 503, records nothing, and WeChat Pay's next delivery
    of the same notification is recorded."""
    settings = replace(fast_settings, notify_budget_seconds=1.0)
    async with make_client(settings) as client:
        _, started = await started_payment(client, demo, "oNotifyBusy000000000000001")
        trade = await paid_trade(started["outTradeNo"])
        message = sealed(notifier, trade)
        url = settings.database_url
        if url.startswith("postgres"):
            blocker = await asyncpg.connect(url)
            hold = blocker.transaction()
            await hold.start()
            await blocker.execute(
                "SELECT id FROM payment_trade WHERE out_trade_no = $1 FOR UPDATE", trade["out_trade_no"]
            )
            release = hold.rollback
        else:
            blocker = sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=0)
            blocker.execute("BEGIN IMMEDIATE")  # another process's write: nobody else may write meanwhile

            async def release() -> None:
                blocker.execute("ROLLBACK")

        try:
            began = time.monotonic()
            busy = await asyncio.wait_for(post(client, message), timeout=6)  # longer: failed here, not hung
            answered_in = time.monotonic() - began
        finally:
            await release()
            close = blocker.close()
            if asyncio.iscoroutine(close):
                await close
        assert (busy.status_code, busy.json()["code"]) == (503, "payments.busy"), busy.text
        assert answered_in < 5  # WeChat Pay's own wait
        assert (await order_row(started["orderId"]))["status"] == "paying"
        again = await post(client, message)
        assert again.status_code == 204, again.text
        assert (await order_row(started["orderId"]))["status"] == "paid"
