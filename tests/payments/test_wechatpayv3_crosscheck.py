"""A second opinion from the SDK merchants use (wechatpayv3, public-key mode): it opens the sandbox's
notifications, signs requests byte for byte as our adapter does, and each side accepts answers the other signs.

No network: the SDK's `requests` is replaced by a stand-in that records what the SDK would send.
"""

import json
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
import requests
import wechatpayv3.core
import wechatpayv3.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.structures import CaseInsensitiveDict
from wechatpayv3 import WeChatPay, WeChatPayType

from backend.payments.wechatpay import WeChatPayProvider
from backend.payments.wechatpay_protocol import (
    authorization,
    jsapi_pay_params,
    open_notification,
    signed_headers,
    verify_request,
    verify_signed,
)
from backend.sandbox.keys import SandboxKeys, load_sandbox_keys
from backend.sandbox.notify import SandboxNotifier, transaction_payload

APPID = "wx8888888888888888"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
OUT_TRADE_NO = "T20261201150405000001"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> SandboxKeys:
    return load_sandbox_keys(tmp_path_factory.mktemp("var"), "the cross-check's secret key")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class OfflineRequests:
    """The SDK's `requests`, offline: records each request and answers what the test put in `answers`."""

    def __init__(self) -> None:
        self.sent: list[SimpleNamespace] = []
        self.answers: list[requests.Response] = []

    def _send(self, method: str, url: str, headers: dict, **kwargs) -> requests.Response:
        self.sent.append(SimpleNamespace(method=method, url=url, headers=dict(headers), **kwargs))
        if not self.answers:
            raise AssertionError(f"the SDK went to the network: {method} {url}")
        return self.answers.pop(0)

    def get(self, *, url: str, headers: dict, **kwargs) -> requests.Response:
        return self._send("GET", url, headers, **kwargs)

    def post(self, *, url: str, headers: dict, **kwargs) -> requests.Response:
        return self._send("POST", url, headers, **kwargs)


@pytest.fixture
def offline(monkeypatch) -> OfflineRequests:
    stand_in = OfflineRequests()
    monkeypatch.setattr(wechatpayv3.core, "requests", stand_in)
    return stand_in


@pytest.fixture
def sdk(keys, offline) -> WeChatPay:
    """The SDK as a merchant configures it for the sandbox: the platform public key and its PUB_KEY_ID_."""
    return WeChatPay(
        wechatpay_type=WeChatPayType.MINIPROG,
        mchid=keys.mchid,
        private_key=private_pem(keys.merchant_key),
        cert_serial_no=MERCHANT_SERIAL,
        appid=APPID,
        apiv3_key=keys.api_v3_key.decode(),
        public_key=public_pem(keys.platform_key),
        public_key_id=keys.platform_serial,
    )


def answer(status: int, headers: dict[str, str], body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content, response.encoding = status, body, "utf-8"
    response.headers = CaseInsensitiveDict({**headers, "Content-Type": "application/json; charset=utf-8"})
    return response


def wechat_signed(keys: SandboxKeys, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return signed_headers(keys.platform_key, keys.platform_serial, body, timestamp=stamp, nonce=secrets.token_hex(16))


def beijing_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", text), text
    assert abs(moment - datetime.now(UTC)) < timedelta(seconds=30)  # the same instant as UTC now
    return moment


# Notifications: sealed by the sandbox, opened by the SDK -----------------------------------------


def test_the_sdk_opens_a_payment_notification_the_sandbox_seals(keys, sdk, offline):
    assert re.fullmatch(r"PUB_KEY_ID_\d{28}", keys.platform_serial)
    trade = {
        "out_trade_no": OUT_TRADE_NO,
        "transaction_id": "4200000000000000000000000001",
        "trade_type": "JSAPI",
        "openid": "oSandboxWallet0000000000001",
        "amount_fen": 2000,
    }
    payload = transaction_payload(trade, mchid=keys.mchid, appid=APPID)
    headers, body = SandboxNotifier(keys, url="").seal(
        "TRANSACTION.SUCCESS", "transaction", json.dumps(payload, ensure_ascii=False).encode()
    )
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    for delivered in (headers, {name.lower(): value for name, value in headers.items()}):  # as frameworks pass them
        opened = sdk.callback(delivered, body)
        assert opened["resource"] == payload
        assert (opened["event_type"], opened["resource_type"], opened["summary"]) == (
            "TRANSACTION.SUCCESS",
            "encrypt-resource",
            "支付成功",
        )
    assert beijing_time(opened["create_time"]) - beijing_time(opened["resource"]["success_time"]) < timedelta(seconds=5)
    assert offline.sent == []


@pytest.mark.parametrize(
    ("status", "summary"), [("SUCCESS", "退款成功"), ("CLOSED", "退款关闭"), ("ABNORMAL", "退款异常")]
)
def test_the_sdk_opens_refund_notifications_with_wechats_summaries(keys, sdk, status, summary):
    payload = {
        "mchid": keys.mchid,
        "out_trade_no": OUT_TRADE_NO,
        "transaction_id": "4200000000000000000000000001",
        "out_refund_no": "R20261201150405000001",
        "refund_id": "50000000000000000000000000001",
        "refund_status": status,
        "amount": {"total": 2000, "refund": 500, "payer_total": 2000, "payer_refund": 500},
    }
    headers, body = SandboxNotifier(keys, url="").seal(f"REFUND.{status}", "refund", json.dumps(payload).encode())
    opened = sdk.callback(headers, body)
    assert (opened["resource"], opened["summary"]) == (payload, summary)
    ours = open_notification(
        headers, body, platform_keys=keys.platform_keys, api_v3_key=keys.api_v3_key, now=int(time.time())
    )
    assert (ours.event_type, ours.original_type, ours.payload) == (f"REFUND.{status}", "refund", payload)


def test_the_sdk_refuses_what_we_refuse(keys, sdk, offline):
    notifier = SandboxNotifier(keys, url="")
    headers, body = notifier.seal("TRANSACTION.SUCCESS", "transaction", b'{"out_trade_no":"T1"}')
    assert sdk.callback(headers, body.replace(b"TRANSACTION", b"TRANSACTIOn")) is None  # changed body
    assert sdk.callback(headers, json.dumps(json.loads(body), indent=1)) is None  # re-serialised body
    # The SDK requires the signature type: a message without it is refused, where ours accepts it.
    untyped = {name: value for name, value in headers.items() if name != "Wechatpay-Signature-Type"}
    with pytest.raises(Exception, match="does not support this algorithm"):
        sdk.callback(untyped, body)
    assert verify_signed(untyped, body, keys.platform_keys, now=int(time.time())) == keys.platform_serial
    # A serial that is not its public key's id sends the SDK to download platform certificates.
    certificate_like = {**headers, "Wechatpay-Serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"}
    with pytest.raises(AssertionError, match="went to the network"):
        sdk.callback(certificate_like, body)
    assert offline.sent[-1].url.endswith("/v3/certificates")


# Requests: the adapter's Authorization, byte for byte the SDK's ---------------------------------------


def sdk_authorization(keys: SandboxKeys, monkeypatch, *, method: str, path: str, body: bytes, header: str) -> str:
    """What the SDK's build_authorization writes for this request, at the adapter's timestamp and nonce."""
    fields = dict(re.findall(r'(\w+)="([^"]*)"', header))
    monkeypatch.setattr(wechatpayv3.utils, "time", SimpleNamespace(time=lambda: int(fields["timestamp"])))
    return wechatpayv3.utils.build_authorization(
        path,
        method,
        keys.mchid,
        MERCHANT_SERIAL,
        wechatpayv3.utils.load_private_key(private_pem(keys.merchant_key)),
        data=body.decode(),
        nonce_str=fields["nonce_str"],
    )


async def test_the_adapter_signs_requests_and_pay_parameters_as_the_sdk_does(keys, sdk, monkeypatch):
    sent: list[httpx.Request] = []

    def wechat_pay(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        path = request.url.path
        if path.endswith("/jsapi"):
            status, reply = 200, {"prepay_id": "wx201410272009395522657a690389285100"}
        elif path.endswith("/close"):
            status, reply = 204, None
        elif path.startswith("/v3/refund/"):
            status, reply = 200, {"refund_id": "50000000000000000000000000001", "status": "PROCESSING"}
        else:
            status, reply = 200, {"trade_state": "NOTPAY", "out_trade_no": OUT_TRADE_NO}
        body = b"" if reply is None else json.dumps(reply, ensure_ascii=False).encode()
        return httpx.Response(status, content=body, headers=wechat_signed(keys, body))

    async with httpx.AsyncClient(transport=httpx.MockTransport(wechat_pay)) as http:
        adapter = WeChatPayProvider(
            http,
            base_url="https://api.mch.weixin.qq.com",
            mchid=keys.mchid,
            appid=APPID,
            serial_no=MERCHANT_SERIAL,
            private_key=keys.merchant_key,
            platform_keys=keys.platform_keys,
            api_v3_key=keys.api_v3_key,
            notify_url="https://shop.example.com/api/v1/payments/wechat/notify",
        )
        params = await adapter.create_jsapi(
            out_trade_no=OUT_TRADE_NO,
            amount_fen=2000,
            payer_openid="oSandboxWallet0000000000001",
            description="门店 S001 · 拿铁",  # sent as UTF-8 bytes, not \u escapes
            expires_in_seconds=900,
        )
        await adapter.query(OUT_TRADE_NO)
        await adapter.close(OUT_TRADE_NO)
        await adapter.refund(
            out_trade_no=OUT_TRADE_NO, out_refund_no="R1", refund_fen=500, total_fen=2000, reason="顾客退货"
        )
        await adapter.query_refund("R1")
    assert [(r.method, r.url.path.rsplit("/", 1)[-1]) for r in sent] == [
        ("POST", "jsapi"),
        ("GET", OUT_TRADE_NO),
        ("POST", "close"),
        ("POST", "refunds"),
        ("GET", "R1"),
    ]
    assert "门店".encode() in sent[0].content
    for request in sent:
        header = request.headers["Authorization"]
        path = request.url.raw_path.decode()
        assert header == sdk_authorization(
            keys, monkeypatch, method=request.method, path=path, body=request.content, header=header
        )
    assert params["paySign"] == sdk.sign([params["appId"], params["timeStamp"], params["nonceStr"], params["package"]])


def test_the_authorization_and_pay_sign_match_the_sdk_at_fixed_inputs(keys, sdk, monkeypatch):
    body = '{"mchid":"1900000109","out_trade_no":"1217752501201407033233368018","description":"拿铁"}'.encode()
    ours = authorization(
        mchid=keys.mchid,
        serial_no=MERCHANT_SERIAL,
        private_key=keys.merchant_key,
        method="POST",
        url="/v3/pay/transactions/jsapi",
        body=body,
        timestamp=1414561699,
        nonce="593BEC0C930BF1AFEB40B4A",
    )
    assert ours == sdk_authorization(
        keys, monkeypatch, method="POST", path="/v3/pay/transactions/jsapi", body=body, header=ours
    )
    params = jsapi_pay_params(
        keys.merchant_key,
        app_id=APPID,
        prepay_id="wx201410272009395522657a690389285100",
        timestamp=1414561699,
        nonce="5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    )
    expected = sdk.sign(
        [APPID, "1414561699", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "prepay_id=wx201410272009395522657a690389285100"]
    )
    assert params["paySign"] == expected


# Answers: signed by one side, verified by the other -----------------------------------------------


def test_the_sdk_verifies_answers_signed_as_our_signed_headers_signs_them(keys, sdk, offline):
    body = json.dumps({"out_trade_no": OUT_TRADE_NO, "trade_state": "SUCCESS", "trade_state_desc": "支付成功"}).encode()
    offline.answers.append(answer(200, wechat_signed(keys, body), body))
    assert sdk.query(out_trade_no=OUT_TRADE_NO) == (200, body.decode())
    # ...and WeChat's side, the sandbox's verify_request, accepts the SDK's own request signature.
    request = offline.sent[-1]
    path = request.url.removeprefix("https://api.mch.weixin.qq.com")
    assert path == f"/v3/pay/transactions/out-trade-no/{OUT_TRADE_NO}?mchid={keys.mchid}"
    merchant_keys = {MERCHANT_SERIAL: keys.merchant_key.public_key()}
    assert (
        verify_request(
            request.headers["Authorization"],
            method="GET",
            url=path,
            body=b"",
            merchant_keys=merchant_keys,
            now=int(time.time()),
        )
        == keys.mchid
    )
    assert request.headers["Wechatpay-Serial"] == keys.platform_serial
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = signed_headers(stranger, keys.platform_serial, body, timestamp=int(time.time()), nonce="n")
    offline.answers.append(answer(200, forged, body))
    with pytest.raises(Exception, match="failed to verify the signature"):
        sdk.query(out_trade_no=OUT_TRADE_NO)


def test_our_verify_signed_accepts_answers_signed_as_the_sdk_expects(keys):
    body = '{"prepay_id":"wx201410272009395522657a690389285100","note":"支付"}'
    timestamp, nonce = int(time.time()), "c5ac7061fccab6bf3e254dcf98995b8c"
    signature = wechatpayv3.utils.rsa_sign(keys.platform_key, f"{timestamp}\n{nonce}\n{body}\n")
    headers = {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Wechatpay-Serial": keys.platform_serial,
    }
    ours = signed_headers(keys.platform_key, keys.platform_serial, body.encode(), timestamp=timestamp, nonce=nonce)
    assert ours == headers  # the same headers, the same signature
    assert verify_signed(headers, body.encode(), keys.platform_keys, now=timestamp) == keys.platform_serial
    public_key = keys.platform_key.public_key()
    assert wechatpayv3.utils.rsa_verify(str(timestamp), nonce, body, ours["Wechatpay-Signature"], public_key)
