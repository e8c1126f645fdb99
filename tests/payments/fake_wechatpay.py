"""A local WeChat Pay APIv3 server for the adapter's tests: it checks every request's signature with the
merchant's public key, keeps trades and refunds in memory, and signs every answer with its platform key.
Served over real HTTP on loopback by uvicorn, on the test's own event loop."""

import asyncio
import json
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509.oid import NameOID

from backend.payments.wechatpay_protocol import (
    VerificationFailed,
    seal_notification,
    signed_headers,
    verify_request,
)

MCHID = "1230000109"
APPID = "wx8888888888888888"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
API_V3_KEY = b"a7cde1ef41d79ba1bd3f2c2b7e3f8e10"


def new_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_pem(key: RSAPrivateKey) -> tuple[str, bytes]:
    """A platform certificate as the merchant downloads it: answers its serial (upper hex) and PEM."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return format(cert.serial_number, "X").upper(), cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Trade:
    out_trade_no: str
    amount: int
    openid: str
    state: str
    transaction_id: str = field(default_factory=lambda: "42" + secrets.token_hex(13)[:26])
    trade_type: str = "MICROPAY"
    queries: int = 0
    reversals: int = 0
    behaviour: str = "success"
    refunded: int = 0


@dataclass
class FakeWeChatPay:
    merchant_key: RSAPublicKey
    platform_key: RSAPrivateKey = field(default_factory=new_key)
    platform_serial: str = "PUB_KEY_ID_0114232134912410000000000000"
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # auth_code -> (behaviour, openid)
    trades: dict[str, Trade] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    requests: list[tuple[str, str, dict]] = field(default_factory=list)  # method, path, body
    rejected: list[str] = field(default_factory=list)  # reasons for requests whose signature failed
    forge_answers: bool = False  # sign answers with a key that is not the platform's
    stale_answers: bool = False
    refund_status: str = "PROCESSING"
    scripted: dict[str, list[tuple[int, dict | None]]] = field(default_factory=dict)  # path -> next answers
    base_url: str = ""

    def calls(self, path_prefix: str) -> int:
        return sum(1 for _, path, _ in self.requests if path.startswith(path_prefix))

    def answer_next(self, path: str, status: int, answer: dict | None = None) -> None:
        """Script the answer to the next request for `path` (no query string): it is still verified, recorded
        and signed like any other, but changes no trade or refund."""
        self.scripted.setdefault(path, []).append((status, answer))

    def sent(self, method: str, path: str) -> dict:
        """The body of the last verified request for `path`."""
        return next(body for m, p, body in reversed(self.requests) if (m, p) == (method, path))

    # the ASGI app ------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        url = scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        try:
            verify_request(
                headers.get("authorization", ""),
                method=scope["method"],
                url=url,
                body=body,
                merchant_keys={MERCHANT_SERIAL: self.merchant_key},
                now=int(time.time()),
            )
        except VerificationFailed as error:
            self.rejected.append(error.reason)
            return await self._answer(send, 401, {"code": "SIGN_ERROR", "message": error.reason})
        payload = json.loads(body) if body else {}
        self.requests.append((scope["method"], scope["path"], payload))
        if self.scripted.get(scope["path"]):
            return await self._answer(send, *self.scripted[scope["path"]].pop(0))
        status, answer = self._route(scope["method"], scope["path"], parse_qs(scope["query_string"].decode()), payload)
        await self._answer(send, status, answer)

    async def _answer(self, send, status: int, answer: dict | None) -> None:
        body = b"" if answer is None else json.dumps(answer, ensure_ascii=False).encode()
        key = new_key() if self.forge_answers else self.platform_key
        timestamp = int(time.time()) - (600 if self.stale_answers else 0)
        headers = signed_headers(key, self.platform_serial, body, timestamp=timestamp, nonce=secrets.token_hex(16))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (k.encode(), v.encode()) for k, v in {**headers, "Content-Type": "application/json"}.items()
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _route(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict | None]:
        if (method, path) == ("POST", "/v3/pay/transactions/codepay"):
            return self._codepay(body)
        if (method, path) == ("POST", "/v3/pay/transactions/jsapi"):
            trade = Trade(
                body["out_trade_no"], body["amount"]["total"], body["payer"]["openid"], "NOTPAY", trade_type="JSAPI"
            )
            self.trades.setdefault(trade.out_trade_no, trade)
            return 200, {"prepay_id": "wx" + secrets.token_hex(16)}
        if match := re.fullmatch(r"/v3/pay/transactions/out-trade-no/(\w+)(/reverse|/close)?", path):
            trade = self.trades.get(match[1])
            if query.get("mchid") != [MCHID] and body.get("mchid") != MCHID:
                return 400, {"code": "PARAM_ERROR", "message": "mchid"}
            if trade is None:
                return 404, {"code": "ORDER_NOT_EXIST", "message": "no such order"}
            if match[2] == "/reverse":
                trade.reversals += 1
                if trade.behaviour == "userpaying_recall" and trade.reversals == 1:
                    return 500, {"code": "SYSTEM_ERROR", "message": "recall"}
                trade.state = "REVOKED"
                return 200, {}
            if match[2] == "/close":
                if trade.state in ("SUCCESS", "REFUND"):
                    return 400, {"code": "ORDERPAID", "message": "paid"}
                trade.state = "CLOSED"
                return 204, None
            trade.queries += 1
            if trade.behaviour == "userpaying_then_success" and trade.queries >= 2 and trade.state == "USERPAYING":
                trade.state = "SUCCESS"
            return 200, self.transaction(trade)
        if (method, path) == ("POST", "/v3/refund/domestic/refunds"):
            trade = self.trades.get(body["out_trade_no"])
            if (
                trade is None
                or trade.state not in ("SUCCESS", "REFUND")
                or trade.refunded + body["amount"]["refund"] > trade.amount
            ):
                return 400, {"code": "INVALID_REQUEST", "message": "not refundable"}
            if body["out_refund_no"] not in self.refunds:
                trade.refunded += body["amount"]["refund"]
                trade.state = "REFUND"
                self.refunds[body["out_refund_no"]] = {
                    "refund_id": "50" + secrets.token_hex(14)[:27],
                    "out_refund_no": body["out_refund_no"],
                    "out_trade_no": trade.out_trade_no,
                    "status": self.refund_status,
                    "amount": {"refund": body["amount"]["refund"], "total": trade.amount},
                }
            return 200, self.refunds[body["out_refund_no"]]
        if match := re.fullmatch(r"/v3/refund/domestic/refunds/(\w+)", path):
            refund = self.refunds.get(match[1])
            if refund is None:
                return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "no such refund"}
            return 200, refund
        return 404, {"code": "NOT_FOUND", "message": path}

    def _codepay(self, body: dict) -> tuple[int, dict]:
        assert body["mchid"] == MCHID and body["appid"] == APPID
        behaviour, openid = self.codes.get(body["payer"]["auth_code"], ("invalid", ""))
        if behaviour == "invalid":
            return 400, {"code": "PARAM_ERROR", "message": "auth_code invalid"}
        if behaviour == "not_enough":
            return 403, {"code": "NOT_ENOUGH", "message": "balance"}
        state = "SUCCESS" if behaviour in ("success", "system_error_then_success") else "USERPAYING"
        trade = Trade(body["out_trade_no"], body["amount"]["total"], openid, state, behaviour=behaviour)
        self.trades[trade.out_trade_no] = trade
        if behaviour == "success":
            return 200, self.transaction(trade)
        if behaviour == "system_error_then_success":
            return 500, {"code": "SYSTEM_ERROR", "message": "try again"}
        return 202, {"code": "USERPAYING", "message": "waiting for the password"}

    def transaction(self, trade: Trade) -> dict:
        answer = {
            "appid": APPID,
            "mchid": MCHID,
            "out_trade_no": trade.out_trade_no,
            "trade_state": trade.state,
            "trade_type": trade.trade_type,
            "amount": {"total": trade.amount, "currency": "CNY"},
        }
        if trade.state in ("SUCCESS", "REFUND"):
            answer.update({"transaction_id": trade.transaction_id, "payer": {"openid": trade.openid}})
        return answer

    def notification(self, trade: Trade) -> tuple[dict[str, str], bytes]:
        """TRANSACTION.SUCCESS, encrypted with the APIv3 key and signed, as WeChat Pay posts it."""
        return seal_notification(
            private_key=self.platform_key,
            serial=self.platform_serial,
            api_v3_key=API_V3_KEY,
            event_id=secrets.token_hex(16),
            event_type="TRANSACTION.SUCCESS",
            original_type="transaction",
            payload=json.dumps(self.transaction(trade)).encode(),
            create_time=datetime.now(ZoneInfo("Asia/Shanghai")).isoformat(timespec="seconds"),
            timestamp=int(time.time()),
            nonce=secrets.token_hex(16),
            resource_nonce=secrets.token_hex(6),
        )


@asynccontextmanager
async def serving(fake: FakeWeChatPay) -> AsyncIterator[FakeWeChatPay]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(fake, lifespan="on", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
        sock.close()
