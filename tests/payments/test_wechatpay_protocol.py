"""WeChat Pay APIv3 signing, verification and resource encryption, including every way a message can be forged."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.payments.wechatpay_protocol import (
    Resource,
    VerificationFailed,
    authorization,
    decrypt_resource,
    encrypt_resource,
    jsapi_pay_params,
    load_private_key,
    load_public_key,
    pay_sign_message,
    signature_valid,
    signed_headers,
    verify_request,
    verify_signed,
)

NOW = 1_795_000_000
API_V3_KEY = b"0123456789abcdef0123456789abcdef"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


PLATFORM, MERCHANT, STRANGER = new_key(), new_key(), new_key()


def pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def pem_certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA sandbox")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x5157F09EFDC096DE)
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


# Both ways WeChat Pay hands out its platform key: a certificate, or a bare public key with an id.
KEYS = {
    "5157F09EFDC096DE": load_public_key(pem_certificate(PLATFORM)),
    "PUB_KEY_ID_0114232134912410000": load_public_key(pem_public(PLATFORM)),
}
BODY = json.dumps({"id": "EV-2018022511223320873", "event_type": "TRANSACTION.SUCCESS"}, separators=(",", ":")).encode()


def signed(body: bytes = BODY, *, serial: str = "5157F09EFDC096DE", timestamp: int = NOW, key=PLATFORM) -> dict:
    return signed_headers(key, serial, body, timestamp=timestamp, nonce="fdasflkja484w")


@pytest.mark.parametrize("serial", list(KEYS))
def test_a_signed_notification_verifies_in_both_key_modes(serial):
    assert verify_signed(signed(serial=serial), BODY, KEYS, now=NOW) == serial
    lowered = {name.lower(): value for name, value in signed(serial=serial).items()}
    assert verify_signed(lowered, BODY, KEYS, now=NOW + 299) == serial


def reserialised(body: bytes) -> bytes:
    return json.dumps(json.loads(body), indent=1).encode()


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        pytest.param(signed(), reserialised(BODY), NOW, "bad_signature", id="re-serialised-body"),
        pytest.param(signed(), BODY.replace(b"SUCCESS", b"SUCCESs"), NOW, "bad_signature", id="changed-body"),
        pytest.param(signed(), BODY, NOW + 301, "stale_timestamp", id="stale"),
        pytest.param(signed(), BODY, NOW - 301, "stale_timestamp", id="from-the-future"),
        pytest.param(signed(key=STRANGER), BODY, NOW, "bad_signature", id="someone-elses-key"),
        pytest.param(signed(serial="UNKNOWN"), BODY, NOW, "unknown_serial", id="unknown-serial"),
        pytest.param(
            {**signed(), "Wechatpay-Signature": "WECHATPAY/SIGNTEST/abc"},
            BODY,
            NOW,
            "signature_probe",
            id="signature-probe",
        ),
        pytest.param({**signed(), "Wechatpay-Signature": "not base64!"}, BODY, NOW, "bad_signature", id="garbage"),
        pytest.param(
            {k: v for k, v in signed().items() if k != "Wechatpay-Nonce"},
            BODY,
            NOW,
            "missing_signature",
            id="missing-nonce",
        ),
    ],
)
def test_forged_or_stale_notifications_are_refused(headers, body, now, reason):
    with pytest.raises(VerificationFailed) as refused:
        verify_signed(headers, body, KEYS, now=now)
    assert refused.value.reason == reason


def test_resources_decrypt_only_when_intact():
    resource = encrypt_resource(
        API_V3_KEY,
        b'{"out_trade_no":"1217752501201407033233368018"}',
        nonce="fdasflkja484",
        associated_data="transaction",
    )
    assert decrypt_resource(API_V3_KEY, resource) == b'{"out_trade_no":"1217752501201407033233368018"}'
    sealed = bytearray(base64.b64decode(resource.ciphertext))
    sealed[3] ^= 0x01
    for tampered in (
        Resource(base64.b64encode(bytes(sealed)).decode(), resource.nonce, resource.associated_data),
        Resource(resource.ciphertext, resource.nonce, "certificate"),
        Resource(resource.ciphertext, "fdasflkja485", resource.associated_data),
        Resource(resource.ciphertext, resource.nonce, resource.associated_data, algorithm="AES_CBC"),
    ):
        with pytest.raises(VerificationFailed):
            decrypt_resource(API_V3_KEY, tampered)
    with pytest.raises(VerificationFailed):
        decrypt_resource(b"f" * 32, resource)


@settings(max_examples=50, deadline=None)
@given(
    plaintext=st.binary(max_size=2000),
    nonce=st.text("abcdef0123456789", min_size=12, max_size=12),
    associated=st.text(max_size=30),
)
def test_any_resource_round_trips(plaintext, nonce, associated):
    resource = encrypt_resource(API_V3_KEY, plaintext, nonce=nonce, associated_data=associated)
    assert decrypt_resource(API_V3_KEY, resource) == plaintext


def test_merchant_requests_are_signed_over_the_five_lines():
    merchant_keys = {"444F4864EA9B34415": MERCHANT.public_key()}
    body = b'{"appid":"wxd678efh567hg6787","mchid":"1230000109"}'
    header = authorization(
        mchid="1230000109",
        serial_no="444F4864EA9B34415",
        private_key=MERCHANT,
        method="POST",
        url="/v3/pay/transactions/jsapi",
        body=body,
        timestamp=NOW,
        nonce="593BEC0C930BF1AFEB40B4A",
    )
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1230000109",nonce_str="593BEC0C930BF1AFEB40B4A"')
    assert (
        verify_request(
            header, method="POST", url="/v3/pay/transactions/jsapi", body=body, merchant_keys=merchant_keys, now=NOW
        )
        == "1230000109"
    )
    for change in ({"url": "/v3/pay/transactions/native"}, {"body": body + b" "}, {"method": "GET"}):
        arguments = {"method": "POST", "url": "/v3/pay/transactions/jsapi", "body": body, **change}
        with pytest.raises(VerificationFailed, match="bad_signature"):
            verify_request(header, merchant_keys=merchant_keys, now=NOW, **arguments)
    with pytest.raises(VerificationFailed, match="stale_timestamp"):
        verify_request(
            header,
            method="POST",
            url="/v3/pay/transactions/jsapi",
            body=body,
            merchant_keys=merchant_keys,
            now=NOW + 600,
        )
    with pytest.raises(VerificationFailed, match="malformed_authorization"):
        verify_request("Bearer x", method="POST", url="/", body=b"", merchant_keys=merchant_keys, now=NOW)


def test_jsapi_parameters_carry_a_pay_sign_over_four_lines():
    params = jsapi_pay_params(
        MERCHANT,
        app_id="wxd678efh567hg6787",
        prepay_id="wx201410272009395522657a690389285100",
        timestamp=1414561699,
        nonce="5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    )
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100" and params["signType"] == "RSA"
    message = pay_sign_message(
        app_id=params["appId"], timestamp=int(params["timeStamp"]), nonce=params["nonceStr"], package=params["package"]
    )
    assert message == (
        b"wxd678efh567hg6787\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\n"
        b"prepay_id=wx201410272009395522657a690389285100\n"
    )
    assert signature_valid(MERCHANT.public_key(), message, params["paySign"])
    assert not signature_valid(STRANGER.public_key(), message, params["paySign"])


def test_keys_load_from_pem():
    pem = MERCHANT.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert load_private_key(pem).public_key().public_numbers() == MERCHANT.public_key().public_numbers()
    with pytest.raises(ValueError):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
