"""The WeChat Pay adapter against a local WeChat Pay server that checks our signatures and signs its answers."""

import os
from dataclasses import replace

import httpx
import pytest

from backend.app import _wechatpay
from backend.core.auth import PrincipalKind, TokenIssuer
from backend.members import service as members
from backend.members.tables import EnrolmentChannel
from backend.members.wechat import WeChatSession
from backend.orders import service as orders
from backend.payments import refunds
from backend.payments.policy import PaymentPolicy
from backend.payments.wechatpay import WeChatPayProvider
from backend.points import service as points
from backend.points.effects import refund_key
from backend.settings import Settings, SettingsError
from tests.conftest import staff_login
from tests.payments.fake_wechatpay import (
    API_V3_KEY,
    APPID,
    MCHID,
    MERCHANT_SERIAL,
    FakeWeChatPay,
    certificate_pem,
    new_key,
    private_pem,
    public_pem,
    serving,
)

ORDERS = "/api/v1/cashier/orders"
MERCHANT_KEY = new_key()


def wechatpay_env(tmp_path, fake: FakeWeChatPay, *, mode: str = "public_key", **extra: str) -> dict[str, str]:
    key_file = tmp_path / "apiclient_key.pem"
    key_file.write_bytes(private_pem(MERCHANT_KEY))
    if mode == "certificate":
        fake.platform_serial, pem = certificate_pem(fake.platform_key)
    else:
        pem = public_pem(fake.platform_key.public_key())
    platform_file = tmp_path / "platform.pem"
    platform_file.write_bytes(pem)
    return {
        **os.environ,
        "PAYMENT_PROVIDER": "wechatpay",
        "WECHAT_APP_ID": APPID,
        "WECHAT_APP_SECRET": "s" * 32,
        "WECHATPAY_MCHID": MCHID,
        "WECHATPAY_SERIAL_NO": MERCHANT_SERIAL,
        "WECHATPAY_PRIVATE_KEY_PATH": str(key_file),
        "WECHATPAY_PLATFORM_KEYS": f"{fake.platform_serial}={platform_file}",
        "WECHATPAY_API_V3_KEY": API_V3_KEY.decode(),
        "WECHATPAY_API_BASE": fake.base_url,
        "PAYMENT_NOTIFY_URL": "https://shop.example.com/api/v1/payments/wechat/notify",
        "MICROPAY_QUERY_INTERVAL_SECONDS": "0.05",
        "MICROPAY_TIMEOUT_SECONDS": "0.3",
        "MICROPAY_INLINE_WAIT_SECONDS": "1",
        "REFUND_QUERY_INTERVAL_SECONDS": "0",
        **extra,
    }


@pytest.fixture
async def fake():
    async with serving(FakeWeChatPay(merchant_key=MERCHANT_KEY.public_key())) as server:
        yield server


@pytest.fixture(params=["public_key", "certificate"])
def wechatpay_settings(request, tmp_path, fake) -> Settings:
    return Settings.from_env(wechatpay_env(tmp_path, fake, mode=request.param))


@pytest.fixture
async def till(make_client, wechatpay_settings):
    async with make_client(wechatpay_settings) as client:
        yield client


@pytest.fixture
async def provider(wechatpay_settings):
    async with httpx.AsyncClient() as http:
        yield _wechatpay(wechatpay_settings, http)


async def scan(client, headers, store_id: int, auth_code: str, key: str, amount: int = 1234):
    return await client.post(
        ORDERS,
        headers=headers,
        json={"storeId": store_id, "amountFen": amount, "authCode": auth_code, "idempotencyKey": key},
    )


async def test_a_checkout_signs_every_request_and_believes_only_signed_answers(till, fake, demo):
    fake.codes["134567890123456789"] = ("success", "oWeChatPayer00000000000001")
    cashier1 = await staff_login(till, "cashier1")
    response = await scan(till, cashier1, demo["S001"], "134567890123456789", "wxpay-0001")
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["status"], order["memberEnrolled"], order["pointsEarned"]) == ("paid", True, 24)
    assert fake.rejected == [] and fake.calls("/v3/pay/transactions/codepay") == 1
    _, _, sent = fake.requests[0]
    assert sent["out_trade_no"] == order["outTradeNo"] and sent["amount"] == {"total": 1234, "currency": "CNY"}
    assert sent["payer"] == {"auth_code": "134567890123456789"} and sent["mchid"] == MCHID
    assert sent["scene_info"] == {"store_info": {"out_id": str(demo["S001"])}}
    assert await points.balance_of(order["memberId"]) == (24, 0)


@pytest.mark.parametrize(
    "behaviour, status, queries",
    [
        ("userpaying_then_success", "paid", 2),
        ("system_error_then_success", "paid", 1),
        ("not_enough", "failed", 0),
        ("invalid", "failed", 0),
    ],
)
async def test_each_codepay_answer_drives_the_state_machine(till, fake, demo, behaviour, status, queries):
    fake.codes["134567890123450000"] = (behaviour, "oWeChatPayer00000000000002")
    cashier1 = await staff_login(till, "cashier1")
    response = await scan(till, cashier1, demo["S001"], "134567890123450000", "wxpay-0002")
    assert response.json()["status"] == status, response.text
    assert fake.calls("/v3/pay/transactions/out-trade-no") == queries and fake.rejected == []


async def test_a_payment_stuck_at_the_password_is_reversed_after_a_recall(till, fake, demo):
    fake.codes["134567890123451111"] = ("userpaying_recall", "oWeChatPayer00000000000003")
    cashier1 = await staff_login(till, "cashier1")
    response = await scan(till, cashier1, demo["S001"], "134567890123451111", "wxpay-0003")
    assert response.json()["status"] == "cancelled", response.text
    trade = next(iter(fake.trades.values()))
    assert (trade.state, trade.reversals) == ("REVOKED", 2)
    paths = [path for _, path, _ in fake.requests]
    first_reverse = next(i for i, path in enumerate(paths) if path.endswith("/reverse"))
    assert sum(path.endswith("/reverse") for path in paths) == 2
    # A reversal is only ever sent after a query has said the trade is not paid.
    assert any(not path.endswith(("/reverse", "/close")) and "/out-trade-no/" in path for path in paths[:first_reverse])


@pytest.fixture
async def impatient_till(make_client, wechatpay_settings):
    async with make_client(replace(wechatpay_settings, micropay_inline_wait_seconds=0.2)) as client:
        yield client


@pytest.mark.parametrize("trouble", ["forge_answers", "stale_answers"])
async def test_an_answer_that_does_not_verify_is_no_answer(impatient_till, fake, demo, trouble, caplog):
    fake.codes["134567890123452222"] = ("success", "oWeChatPayer00000000000004")
    setattr(fake, trouble, True)
    till = impatient_till
    cashier1 = await staff_login(till, "cashier1")
    response = await scan(till, cashier1, demo["S001"], "134567890123452222", "wxpay-0004")
    assert response.json()["status"] == "paying"  # neither paid nor failed: nobody we trust has answered
    assert any(r.getMessage() == "WeChat Pay answer not verified" for r in caplog.records)
    setattr(fake, trouble, False)
    cancel = await till.post(f"{ORDERS}/{response.json()['id']}/cancel", headers=cashier1)
    assert cancel.status_code == 409  # the query, now verified, shows the shopper had paid
    order = await orders.find_order(response.json()["id"])
    assert (order.status, order.points_earned) == ("paid", 24)


async def test_a_request_signed_with_another_key_is_refused_by_wechat_pay(fake, wechatpay_settings):
    async with httpx.AsyncClient() as http:
        impostor = _wechatpay(wechatpay_settings, http)
        impostor._private_key = new_key()
        fake.codes["134567890123453333"] = ("success", "oWeChatPayer00000000000005")
        payment = await impostor.micropay(
            out_trade_no="T0000000000000000000000001",
            amount_fen=100,
            auth_code="134567890123453333",
            description="till",
        )
    assert (payment.outcome.value, payment.error_code) == ("failed", "SIGN_ERROR")
    assert fake.rejected == ["bad_signature"] and fake.trades == {}


async def test_a_mini_program_order_is_paid_by_wechat_pays_notification(till, fake, demo, provider, wechatpay_settings):
    member_id, _ = await members.find_or_enrol_wechat_member(
        WeChatSession(app_id=APPID, openid="oMiniProgram00000000000001", unionid=None),
        channel=EnrolmentChannel.miniprogram,
    )
    token = TokenIssuer(wechatpay_settings.secret_key, member_ttl=600, staff_ttl=600).issue(
        PrincipalKind.member, member_id
    )
    response = await till.post(
        f"/api/v1/stores/{demo['S001']}/payments",
        json={"amountFen": 3000},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    started = response.json()
    _, _, sent = next(r for r in fake.requests if r[1] == "/v3/pay/transactions/jsapi")
    assert sent["payer"] == {"openid": "oMiniProgram00000000000001"} and sent["amount"]["total"] == 3000
    assert sent["notify_url"] == wechatpay_settings.payment_notify_url and sent["time_expire"].endswith("+00:00")
    assert started["payParams"]["package"].startswith("prepay_id=wx")

    trade = fake.trades[started["outTradeNo"]]
    trade.state = "SUCCESS"
    headers, body = fake.notification(trade)
    for _ in range(2):
        notified = await till.post("/api/v1/payments/wechat/notify", content=body, headers=headers)
        assert notified.status_code == 204, notified.text
    order = await orders.find_order(started["orderId"])
    assert (order.status, order.member, order.points_earned) == ("paid", member_id, 60)


async def test_a_refund_is_confirmed_by_a_later_query(till, fake, demo, provider, wechatpay_settings):
    fake.codes["134567890123454444"] = ("success", "oWeChatPayer00000000000006")
    cashier1 = await staff_login(till, "cashier1")
    order = (await scan(till, cashier1, demo["S001"], "134567890123454444", "wxpay-0006", amount=5000)).json()
    response = await till.post(
        f"{ORDERS}/{order['id']}/refunds",
        headers=cashier1,
        json={"amountFen": 2000, "idempotencyKey": "wxpay-refund-1"},
    )
    assert (response.status_code, response.json()["status"]) == (201, "processing"), response.text
    _, _, sent = next(r for r in fake.requests if r[1] == "/v3/refund/domestic/refunds")
    assert sent["amount"] == {"refund": 2000, "total": 5000, "currency": "CNY"}
    assert sent["out_refund_no"] == response.json()["outRefundNo"]
    policy = PaymentPolicy.from_settings(wechatpay_settings)
    await refunds.advance_due(provider=provider, policy=policy)
    assert (await refunds.find_refund(response.json()["refundId"])).status == "processing"
    fake.refunds[sent["out_refund_no"]]["status"] = "SUCCESS"
    await refunds.advance_due(provider=provider, policy=policy)
    settled = await refunds.find_refund(response.json()["refundId"])
    taken, _ = await points.reversed_under(refund_key(settled.order, settled.id))
    assert (settled.status, taken) == ("succeeded", 40)  # 40% of 100
    assert isinstance(provider, WeChatPayProvider) and fake.rejected == []


@pytest.mark.parametrize(
    "missing", ["WECHATPAY_MCHID", "WECHATPAY_API_V3_KEY", "WECHATPAY_PLATFORM_KEYS", "PAYMENT_NOTIFY_URL"]
)
def test_wechat_pay_needs_all_its_credentials(tmp_path, missing):
    fake = FakeWeChatPay(merchant_key=MERCHANT_KEY.public_key())
    env = wechatpay_env(tmp_path, fake)
    env.pop(missing)
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)
    with pytest.raises(SettingsError, match="32-character"):
        Settings.from_env({**wechatpay_env(tmp_path, fake), "WECHATPAY_API_V3_KEY": "short"})
