"""The WeChat Pay adapter against a local WeChat Pay server that checks our signatures and signs its answers."""

import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

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
from backend.payments.provider import NO_ANSWER, CloseOutcome, ProviderError, RefundResult, RefundState, Reversal
from backend.payments.wechatpay import AskAgainLater, WeChatPayProvider
from backend.payments.wechatpay_protocol import pay_sign_message, signature_valid
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
    Trade,
    certificate_pem,
    new_key,
    private_pem,
    public_pem,
    serving,
)

ORDERS = "/api/v1/cashier/orders"
MERCHANT_KEY = new_key()
NOTIFY_URL = "https://shop.example.com/api/v1/payments/wechat/notify"


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
        "PAYMENT_NOTIFY_URL": NOTIFY_URL,
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


# The adapter's calls one by one, against the fake; WeChat Pay's less common answers are scripted there. ---------

OUT_TRADE_NO = "T20260101000000000000000042"
OUT_REFUND_NO = "R20260101000000000000000042"
PAYER = "oWeChatPayer00000000000042"
TRADE = f"/v3/pay/transactions/out-trade-no/{OUT_TRADE_NO}"
JSAPI = "/v3/pay/transactions/jsapi"
REFUNDS = "/v3/refund/domestic/refunds"


@pytest.fixture
async def adapter(tmp_path, fake):
    """The adapter as the app builds it (public-key mode; the certificate mode only loads the key otherwise)."""
    async with httpx.AsyncClient() as http:
        yield _wechatpay(Settings.from_env(wechatpay_env(tmp_path, fake)), http)


def trade_at(fake: FakeWeChatPay, state: str, *, amount: int = 5000) -> Trade:
    trade = Trade(OUT_TRADE_NO, amount, PAYER, state, trade_type="JSAPI")
    fake.trades[trade.out_trade_no] = trade
    return trade


def sent_paths(fake: FakeWeChatPay) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in fake.requests]


async def refund_5000(adapter: WeChatPayProvider, *, reason: str = "") -> RefundResult:
    return await adapter.refund(
        out_trade_no=OUT_TRADE_NO, out_refund_no=OUT_REFUND_NO, refund_fen=2000, total_fen=5000, reason=reason
    )


@pytest.mark.parametrize("scripted", [None, (200, {})], ids=["204 (the fake's own)", "200"])
async def test_a_close_wechat_pay_accepts_is_closed_without_a_query(adapter, fake, scripted):
    trade = trade_at(fake, "NOTPAY")
    if scripted:
        fake.answer_next(f"{TRADE}/close", *scripted)
    assert await adapter.close(OUT_TRADE_NO) is CloseOutcome.closed
    assert fake.sent("POST", f"{TRADE}/close") == {"mchid": MCHID}
    assert sent_paths(fake) == [("POST", f"{TRADE}/close")] and fake.rejected == []
    assert trade.state == ("NOTPAY" if scripted else "CLOSED")


@pytest.mark.parametrize("state", ["SUCCESS", "REFUND"])
async def test_a_close_refused_because_the_trade_is_paid_is_already_paid(adapter, fake, state):
    trade_at(fake, state)  # the fake refuses with ORDERPAID
    assert await adapter.close(OUT_TRADE_NO) is CloseOutcome.already_paid
    assert sent_paths(fake) == [("POST", f"{TRADE}/close"), ("GET", TRADE)]


@pytest.mark.parametrize("state", ["CLOSED", "REVOKED"])
async def test_a_close_refused_because_the_trade_ended_unpaid_is_closed(adapter, fake, state):
    trade_at(fake, state)
    fake.answer_next(f"{TRADE}/close", 400, {"code": "ORDER_CLOSED", "message": "closed"})
    assert await adapter.close(OUT_TRADE_NO) is CloseOutcome.closed
    assert sent_paths(fake) == [("POST", f"{TRADE}/close"), ("GET", TRADE)]


@pytest.mark.parametrize(
    "status, answer, code, text",
    [
        (400, {"code": "PARAM_ERROR", "message": "out_trade_no"}, "PARAM_ERROR", "PARAM_ERROR: out_trade_no"),
        (403, None, "HTTP_403", "HTTP_403"),
        (400, {"message": "no code"}, "HTTP_400", "HTTP_400: no code"),
    ],
    ids=["with a code", "empty body", "without a code"],
)
async def test_a_close_refused_for_a_trade_still_open_raises_wechat_pays_code(
    adapter, fake, status, answer, code, text
):
    trade = trade_at(fake, "NOTPAY")
    fake.answer_next(f"{TRADE}/close", status, answer)
    with pytest.raises(ProviderError) as refused:
        await adapter.close(OUT_TRADE_NO)
    assert (refused.value.code, str(refused.value)) == (code, text)
    assert sent_paths(fake) == [("POST", f"{TRADE}/close"), ("GET", TRADE)] and trade.state == "NOTPAY"


async def test_a_jsapi_order_tells_wechat_pay_the_payer_the_expiry_and_where_to_notify(adapter, fake):
    description = "团购" * 100  # 200 characters; WeChat Pay takes 127
    fake.answer_next(JSAPI, 200, {"prepay_id": "wx201410272009395522657a690389285100"})
    before = datetime.now(UTC).replace(microsecond=0)
    params = await adapter.create_jsapi(
        out_trade_no=OUT_TRADE_NO, amount_fen=3000, payer_openid=PAYER, description=description, expires_in_seconds=900
    )
    after = datetime.now(UTC)
    sent = fake.sent("POST", JSAPI)
    time_expire = sent.pop("time_expire")
    assert sent == {
        "appid": APPID,
        "mchid": MCHID,
        "description": description[:127],
        "out_trade_no": OUT_TRADE_NO,
        "notify_url": NOTIFY_URL,
        "amount": {"total": 3000, "currency": "CNY"},
        "payer": {"openid": PAYER},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", time_expire), time_expire  # RFC 3339
    assert before + timedelta(seconds=900) <= datetime.fromisoformat(time_expire) <= after + timedelta(seconds=900)
    assert (params["appId"], params["package"], params["signType"]) == (
        APPID,
        "prepay_id=wx201410272009395522657a690389285100",
        "RSA",
    )
    message = pay_sign_message(
        app_id=APPID, timestamp=int(params["timeStamp"]), nonce=params["nonceStr"], package=params["package"]
    )
    assert signature_valid(MERCHANT_KEY.public_key(), message, params["paySign"])
    assert re.fullmatch(r"[0-9a-f]{32}", params["nonceStr"])  # wx.requestPayment takes at most 32 characters


@pytest.mark.parametrize(
    "status, answer, code",
    [
        (400, {"code": "PARAM_ERROR", "message": "time_expire"}, "PARAM_ERROR"),
        (403, {"code": "OUT_TRADE_NO_USED", "message": "used"}, "OUT_TRADE_NO_USED"),
        (200, {}, "HTTP_200"),  # accepted without a prepay_id: nothing the payer could pay
    ],
    ids=["PARAM_ERROR", "OUT_TRADE_NO_USED", "no prepay_id"],
)
async def test_a_refused_jsapi_order_raises_wechat_pays_code(adapter, fake, status, answer, code):
    fake.answer_next(JSAPI, status, answer)
    with pytest.raises(ProviderError) as refused:
        await adapter.create_jsapi(
            out_trade_no=OUT_TRADE_NO, amount_fen=3000, payer_openid=PAYER, description="团购", expires_in_seconds=900
        )
    assert refused.value.code == code


@pytest.mark.parametrize("reason, sent_reason", [("退款" * 50, "退款" * 40), ("", None)], ids=["long", "none"])
async def test_a_refund_tells_wechat_pay_the_amounts_and_the_reason(adapter, fake, reason, sent_reason):
    trade_at(fake, "SUCCESS", amount=5000)
    result = await refund_5000(adapter, reason=reason)
    assert fake.sent("POST", REFUNDS) == {
        "out_trade_no": OUT_TRADE_NO,
        "out_refund_no": OUT_REFUND_NO,
        "notify_url": NOTIFY_URL,
        "amount": {"refund": 2000, "total": 5000, "currency": "CNY"},
        **({"reason": sent_reason} if sent_reason else {}),
    }
    assert result == RefundResult(RefundState.processing, refund_id=fake.refunds[OUT_REFUND_NO]["refund_id"])


@pytest.mark.parametrize("state", list(RefundState), ids=lambda state: state.value)
async def test_a_refund_and_its_query_answer_wechat_pays_status_and_refund_id(adapter, fake, state):
    trade_at(fake, "SUCCESS")
    fake.refund_status = state.value
    result = await refund_5000(adapter)
    expected = RefundResult(state, refund_id=fake.refunds[OUT_REFUND_NO]["refund_id"])
    assert (result, await adapter.query_refund(OUT_REFUND_NO)) == (expected, expected)
    assert ("GET", f"{REFUNDS}/{OUT_REFUND_NO}") in sent_paths(fake)


async def test_a_refund_status_the_port_does_not_know_is_refused_as_unknown(adapter, fake):
    trade_at(fake, "SUCCESS")
    fake.refund_status = "REFUNDING"
    with pytest.raises(ProviderError) as refused:
        await refund_5000(adapter)
    assert (refused.value.code, str(refused.value)) == ("UNKNOWN_REFUND_STATUS", "UNKNOWN_REFUND_STATUS: REFUNDING")
    with pytest.raises(ProviderError, match="^UNKNOWN_REFUND_STATUS: REFUNDING$"):
        await adapter.query_refund(OUT_REFUND_NO)


@pytest.mark.parametrize(
    "status, answer",
    [
        (500, {"code": "SYSTEM_ERROR", "message": "系统错误"}),
        (500, None),
        (503, {"message": "unavailable"}),
        (429, {"code": "FREQUENCY_LIMITED", "message": "slow down"}),
        (400, {"code": "SYSTEM_ERROR", "message": "the code decides, whatever the status"}),
    ],
    ids=["500 SYSTEM_ERROR", "500 empty", "503 without a code", "429 FREQUENCY_LIMITED", "400 SYSTEM_ERROR"],
)
async def test_a_refund_answered_with_a_system_error_or_a_rate_limit_is_asked_again_later(
    adapter, fake, status, answer
):
    trade = trade_at(fake, "SUCCESS")
    fake.answer_next(REFUNDS, status, answer)
    with pytest.raises(AskAgainLater) as later:
        await refund_5000(adapter)
    assert isinstance(later.value, NO_ANSWER) and not isinstance(later.value, ProviderError)
    assert (await refund_5000(adapter)).state is RefundState.processing  # asked again as it was
    assert trade.refunded == 2000


@pytest.mark.parametrize(
    "status, answer, code",
    [
        (403, {"code": "NOT_ENOUGH", "message": "余额不足"}, "NOT_ENOUGH"),
        (400, {"code": "INVALID_REQUEST", "message": "refunded in full"}, "INVALID_REQUEST"),
        (404, None, "HTTP_404"),
    ],
    ids=["NOT_ENOUGH", "INVALID_REQUEST", "empty 404"],
)
async def test_a_refund_refused_raises_wechat_pays_code(adapter, fake, status, answer, code):
    trade_at(fake, "SUCCESS")
    fake.answer_next(REFUNDS, status, answer)
    with pytest.raises(ProviderError) as refused:
        await refund_5000(adapter)
    assert refused.value.code == code


async def test_a_refund_of_an_unpaid_trade_is_refused_with_wechat_pays_code(adapter, fake):
    trade_at(fake, "NOTPAY")  # the fake's own refusal
    with pytest.raises(ProviderError) as refused:
        await refund_5000(adapter)
    assert refused.value.code == "INVALID_REQUEST" and fake.refunds == {}


@pytest.mark.parametrize(
    "scripted, code",
    [(None, "RESOURCE_NOT_EXISTS"), ((500, {"code": "SYSTEM_ERROR"}), "SYSTEM_ERROR"), ((429, None), "HTTP_429")],
    ids=["no such refund (the fake's own)", "SYSTEM_ERROR", "empty 429"],
)
async def test_a_refund_query_refused_raises_wechat_pays_code(adapter, fake, scripted, code):
    if scripted:
        fake.answer_next(f"{REFUNDS}/{OUT_REFUND_NO}", *scripted)
    with pytest.raises(ProviderError) as refused:
        await adapter.query_refund(OUT_REFUND_NO)
    assert refused.value.code == code


@pytest.mark.parametrize("scripted", [None, (204, None)], ids=["200 (the fake's own)", "204"])
async def test_a_reverse_answered_200_or_204_is_done(adapter, fake, scripted):
    trade_at(fake, "USERPAYING")
    if scripted:
        fake.answer_next(f"{TRADE}/reverse", *scripted)
    assert await adapter.reverse(OUT_TRADE_NO) == Reversal(done=True, recall=False)
    assert fake.sent("POST", f"{TRADE}/reverse") == {"appid": APPID, "mchid": MCHID}


RECALL, DONE, REFUSED = Reversal(done=False, recall=True), Reversal(done=True, recall=False), Reversal(False, False)


@pytest.mark.parametrize(
    "status, answer, reversal",
    [
        pytest.param(500, None, RECALL, id="500 empty"),
        *(  # the code decides, whatever the status
            pytest.param(400, {"code": code}, RECALL, id=f"400 {code}")
            for code in ("USERPAYING", "SYSTEM_ERROR", "SYSTEMERROR", "BANK_ERROR", "BANKERROR", "FREQUENCY_LIMITED")
        ),
        pytest.param(404, {"code": "ORDER_NOT_EXIST"}, DONE, id="404 ORDER_NOT_EXIST"),  # nothing was taken
        pytest.param(400, {"code": "INVALID_REQUEST", "message": "paid"}, REFUSED, id="400 INVALID_REQUEST"),
        pytest.param(403, None, REFUSED, id="403 empty"),
    ],
)
async def test_a_reverse_not_done_is_recalled_or_refused_by_its_code(adapter, fake, status, answer, reversal):
    trade_at(fake, "USERPAYING")
    fake.answer_next(f"{TRADE}/reverse", status, answer)
    assert await adapter.reverse(OUT_TRADE_NO) == reversal
