"""The sandbox speaks for WeChat Pay: each wallet scenario answers micropay, query and reverse as WeChat Pay would."""

import asyncio
import re

import pytest

from backend.cashier.codes import PaymentCodeKind, classify_payment_code
from backend.payments.provider import PaymentProvider, PayOutcome, TradeState
from backend.sandbox.keys import load_sandbox_keys
from backend.sandbox.tables import SandboxTrade

OPENID = "oSandboxWallet0000000000001"


async def payment_code(client, scenario: str | None = None, openid: str = OPENID) -> str:
    response = await client.post(
        f"/api/v1/sandbox/wallets/{openid}/payment-codes", json={"scenario": scenario} if scenario else {}
    )
    assert response.status_code == 201, response.text
    code = response.json()["authCode"]
    assert classify_payment_code(code) == PaymentCodeKind.wechat
    return code


async def pay(provider, code: str, trade: str, amount: int = 1234):
    return await provider.micropay(out_trade_no=trade, amount_fen=amount, auth_code=code, description="till")


async def test_success_pays_at_once_as_the_wallet_owner(client, sandbox_provider):
    provider = sandbox_provider
    assert isinstance(provider, PaymentProvider)
    payment = await pay(provider, await payment_code(client), "T000000000000000001")
    assert (payment.outcome, payment.payer_openid, payment.amount_fen) == (PayOutcome.paid, OPENID, 1234)
    assert (await provider.query("T000000000000000001")).state == TradeState.success


async def test_password_then_success_pays_at_the_second_query(client, sandbox_provider):
    provider = sandbox_provider
    payment = await pay(provider, await payment_code(client, "password_then_success"), "T000000000000000002")
    assert (payment.outcome, payment.error_code) == (PayOutcome.unknown, "USERPAYING")
    assert (await provider.query("T000000000000000002")).state == TradeState.userpaying
    paid = await provider.query("T000000000000000002")
    assert (paid.state, paid.payer_openid, paid.amount_fen) == (TradeState.success, OPENID, 1234)


async def test_password_timeout_stays_unpaid_and_reverses_after_a_recall(client, sandbox_provider):
    provider = sandbox_provider
    payment = await pay(provider, await payment_code(client, "password_timeout"), "T000000000000000003")
    assert payment.outcome == PayOutcome.unknown
    for _ in range(5):
        assert (await provider.query("T000000000000000003")).state == TradeState.userpaying
    first, second = await provider.reverse("T000000000000000003"), await provider.reverse("T000000000000000003")
    assert (first.done, first.recall, second.done, second.recall) == (False, True, True, False)
    assert (await provider.query("T000000000000000003")).state == TradeState.revoked


async def test_insufficient_funds_is_a_definite_failure(client, sandbox_provider):
    payment = await pay(sandbox_provider, await payment_code(client, "insufficient_funds"), "T000000000000000004")
    assert (payment.outcome, payment.error_code) == (PayOutcome.failed, "NOTENOUGH")


async def test_a_system_error_hides_a_payment_that_the_query_reveals(client, sandbox_provider):
    provider = sandbox_provider
    payment = await pay(provider, await payment_code(client, "system_error_then_success"), "T000000000000000005")
    assert (payment.outcome, payment.error_code) == (PayOutcome.unknown, "SYSTEMERROR")
    assert (await provider.query("T000000000000000005")).state == TradeState.success


async def test_a_payment_code_pays_once(client, sandbox_provider):
    provider = sandbox_provider
    code = await payment_code(client)
    results = await asyncio.gather(*(pay(provider, code, f"T00000000000000010{i}") for i in range(5)))
    assert sorted(r.outcome for r in results) == [PayOutcome.failed] * 4 + [PayOutcome.paid]
    assert await SandboxTrade.count() == 1
    assert (await pay(provider, "130000000000000000", "T000000000000000200")).error_code == "AUTHCODEEXPIRE"
    assert (await provider.query("T-never-paid-000001")).state == TradeState.notpay


async def test_repeating_a_trade_answers_the_same_trade(client, sandbox_provider):
    provider = sandbox_provider
    first = await pay(provider, await payment_code(client), "T000000000000000300")
    again = await pay(provider, await payment_code(client), "T000000000000000300", amount=1)
    assert again.transaction_id == first.transaction_id and again.amount_fen == 1234
    assert await SandboxTrade.count() == 1


@pytest.mark.parametrize("body", [{"scenario": "free_money"}, {"scenario": 1}, {"amount": 5}])
async def test_bad_wallet_requests(client, body):
    response = await client.post(f"/api/v1/sandbox/wallets/{OPENID}/payment-codes", json=body)
    assert response.status_code == 422
    assert (await client.post("/api/v1/sandbox/wallets/x/payment-codes", json={})).status_code == 422


def test_the_sandbox_keeps_one_public_key_id_per_key(tmp_path):
    first, again = load_sandbox_keys(tmp_path, "secret"), load_sandbox_keys(tmp_path, "secret")
    assert re.fullmatch(r"PUB_KEY_ID_\d{28}", first.platform_serial)
    assert again.platform_serial == first.platform_serial  # a restart reads the same key file
    assert load_sandbox_keys(tmp_path / "elsewhere", "secret").platform_serial != first.platform_serial
