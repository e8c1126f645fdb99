"""WeChat Pay APIv3 on the wire: signing, verification and resource encryption, from either side.

Pure functions over bytes and keys, no HTTP: the WeChat Pay adapter uses the
merchant's side (sign requests, verify answers and notifications, decrypt
resources, sign JSAPI parameters); the sandbox uses WeChat's side (verify the
merchant's requests, sign answers and notifications, encrypt resources).
Signatures always cover the raw body bytes: a body parsed and serialised again
no longer verifies.
"""

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
TIMESTAMP_WINDOW_SECONDS = 300
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


class VerificationFailed(Exception):
    """The message is not WeChat Pay's (or not the merchant's), not fresh, or not intact; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Keys ---------------------------------------------------------------------------


def load_private_key(pem: bytes) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("WeChat Pay keys are RSA keys")
    return key


def load_public_key(pem: bytes) -> RSAPublicKey:
    """A platform certificate (certificate mode) or a bare public key (public-key mode)."""
    if b"BEGIN CERTIFICATE" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        key = serialization.load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("WeChat Pay keys are RSA keys")
    return key


def sign(private_key: RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def signature_valid(public_key: RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


# The merchant's requests --------------------------------------------------------


def request_message(method: str, url: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    """The five lines a request signature covers; `url` is the path with its query string."""
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: RSAPrivateKey,
    method: str,
    url: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> str:
    signature = sign(private_key, request_message(method, url, timestamp, nonce, body))
    return (
        f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def verify_request(
    header: str, *, method: str, url: str, body: bytes, merchant_keys: Mapping[str, RSAPublicKey], now: int
) -> str:
    """WeChat's side: check a merchant's Authorization header; answers the merchant id."""
    scheme, _, rest = header.partition(" ")
    fields = dict(_AUTH_FIELD.findall(rest))
    if scheme != AUTH_SCHEME or not {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} <= fields.keys():
        raise VerificationFailed("malformed_authorization")
    if not fields["timestamp"].isdigit() or abs(now - int(fields["timestamp"])) > TIMESTAMP_WINDOW_SECONDS:
        raise VerificationFailed("stale_timestamp")
    key = merchant_keys.get(fields["serial_no"])
    if key is None:
        raise VerificationFailed("unknown_serial")
    message = request_message(method, url, int(fields["timestamp"]), fields["nonce_str"], body)
    if not signature_valid(key, message, fields["signature"]):
        raise VerificationFailed("bad_signature")
    return fields["mchid"]


# WeChat Pay's answers and notifications -----------------------------------------------


def response_message(timestamp: int | str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def signed_headers(
    private_key: RSAPrivateKey, serial: str, body: bytes, *, timestamp: int, nonce: str
) -> dict[str, str]:
    """WeChat's side: the headers that sign an answer or a notification."""
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sign(private_key, response_message(timestamp, nonce, body)),
        "Wechatpay-Signature-Type": AUTH_SCHEME,
        "Wechatpay-Serial": serial,
    }


def verify_signed(
    headers: Mapping[str, str], body: bytes, platform_keys: Mapping[str, RSAPublicKey], *, now: int
) -> str:
    """The merchant's side: check an answer or a notification over its raw body; answers the key's serial.

    `platform_keys` maps serials to keys: platform certificate serials, or `PUB_KEY_ID_...`
    in public-key mode. Header names are matched case-insensitively. `Wechatpay-Signature-Type`
    is not required: WeChat Pay's documented answers do not all carry it.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp, nonce = lowered.get("wechatpay-timestamp"), lowered.get("wechatpay-nonce")
    signature, serial = lowered.get("wechatpay-signature"), lowered.get("wechatpay-serial")
    if not (timestamp and nonce and signature and serial):
        raise VerificationFailed("missing_signature")
    if signature.startswith(SIGNTEST_PREFIX):
        raise VerificationFailed("signature_probe")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TIMESTAMP_WINDOW_SECONDS:
        raise VerificationFailed("stale_timestamp")
    key = platform_keys.get(serial)
    if key is None:
        raise VerificationFailed("unknown_serial")
    if not signature_valid(key, response_message(timestamp, nonce, body), signature):
        raise VerificationFailed("bad_signature")
    return serial


# Resources: AEAD_AES_256_GCM under the APIv3 key -------------------------------------


@dataclass(frozen=True, slots=True)
class Resource:
    ciphertext: str
    nonce: str
    associated_data: str
    algorithm: str = "AEAD_AES_256_GCM"


def _aes(api_v3_key: bytes) -> AESGCM:
    if len(api_v3_key) != 32:
        raise ValueError("the APIv3 key is 32 bytes")
    return AESGCM(api_v3_key)


def encrypt_resource(api_v3_key: bytes, plaintext: bytes, *, nonce: str, associated_data: str) -> Resource:
    """WeChat's side: seal a notification's resource."""
    sealed = _aes(api_v3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return Resource(ciphertext=base64.b64encode(sealed).decode(), nonce=nonce, associated_data=associated_data)


def decrypt_resource(api_v3_key: bytes, resource: Resource) -> bytes:
    """The merchant's side: open a resource; any change to ciphertext, nonce or associated data fails."""
    if resource.algorithm != "AEAD_AES_256_GCM":
        raise VerificationFailed("unknown_algorithm")
    try:
        sealed = base64.b64decode(resource.ciphertext, validate=True)
        return _aes(api_v3_key).decrypt(resource.nonce.encode(), sealed, resource.associated_data.encode())
    except (InvalidTag, ValueError):
        raise VerificationFailed("decryption_failed") from None


# The mini-program's wx.requestPayment ----------------------------------------------


def pay_sign_message(*, app_id: str, timestamp: int, nonce: str, package: str) -> bytes:
    return f"{app_id}\n{timestamp}\n{nonce}\n{package}\n".encode()


def jsapi_pay_params(
    private_key: RSAPrivateKey, *, app_id: str, prepay_id: str, timestamp: int, nonce: str
) -> dict[str, str]:
    """The parameters wx.requestPayment takes, signed with the merchant key."""
    package = f"prepay_id={prepay_id}"
    return {
        "appId": app_id,
        "timeStamp": str(timestamp),
        "nonceStr": nonce,
        "package": package,
        "signType": "RSA",
        "paySign": sign(
            private_key, pay_sign_message(app_id=app_id, timestamp=timestamp, nonce=nonce, package=package)
        ),
    }


# Notifications: a signed JSON envelope around an encrypted resource ----------------------

# The summary WeChat Pay writes for each event type.
SUMMARIES = {
    "TRANSACTION.SUCCESS": "支付成功",
    "REFUND.SUCCESS": "退款成功",
    "REFUND.CLOSED": "退款关闭",
    "REFUND.ABNORMAL": "退款异常",
}


def seal_notification(
    *,
    private_key: RSAPrivateKey,
    serial: str,
    api_v3_key: bytes,
    event_id: str,
    event_type: str,
    original_type: str,
    payload: bytes,
    create_time: str,
    timestamp: int,
    nonce: str,
    resource_nonce: str,
) -> tuple[dict[str, str], bytes]:
    """WeChat's side: the headers and raw body of a notification, as WeChat Pay posts it."""
    resource = encrypt_resource(api_v3_key, payload, nonce=resource_nonce, associated_data=original_type)
    envelope = {
        "id": event_id,
        "create_time": create_time,
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": SUMMARIES.get(event_type, event_type),
        "resource": {
            "original_type": original_type,
            "algorithm": resource.algorithm,
            "ciphertext": resource.ciphertext,
            "associated_data": resource.associated_data,
            "nonce": resource.nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    headers = signed_headers(private_key, serial, body, timestamp=timestamp, nonce=nonce)
    return {**headers, "Content-Type": "application/json"}, body


@dataclass(frozen=True, slots=True)
class Notification:
    event_type: str
    original_type: str
    payload: dict


def open_notification(
    headers: Mapping[str, str], body: bytes, *, platform_keys: Mapping[str, RSAPublicKey], api_v3_key: bytes, now: int
) -> Notification:
    """The merchant's side: verify over the raw body first, then parse and decrypt."""
    verify_signed(headers, body, platform_keys, now=now)
    try:
        envelope = json.loads(body)
        raw = envelope["resource"]
        resource = Resource(
            ciphertext=raw["ciphertext"],
            nonce=raw["nonce"],
            associated_data=raw.get("associated_data") or "",
            algorithm=raw["algorithm"],
        )
        event_type = envelope["event_type"]
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed("malformed_notification") from None
    try:
        payload = json.loads(decrypt_resource(api_v3_key, resource))
    except ValueError:
        raise VerificationFailed("malformed_resource") from None
    if not isinstance(payload, dict) or not isinstance(event_type, str):
        raise VerificationFailed("malformed_resource")
    return Notification(event_type=event_type, original_type=raw.get("original_type") or "", payload=payload)
