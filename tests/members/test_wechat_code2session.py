"""The real WeChat clients (code2session, access token, phone number), against a local HTTP server that
answers as WeChat does."""

import threading

import pytest
import uvicorn
from litestar import Litestar, Request, get, post
from litestar.params import JSONBody

from backend.members.tables import IdentityKind, Member, MemberIdentity

APP_ID, APP_SECRET = "wx0123456789abcdef", "s" * 32
ANSWERS = {
    "good-code": {
        "openid": "oRealWeChat00000000000000001",
        "session_key": "SECRET-SESSION-KEY",
        "unionid": "uRealWeChat0000000000000001",
    },
    "used-code": {"errcode": 40163, "errmsg": "code been used"},
    "bad-code": {"errcode": 40029, "errmsg": "invalid code"},
    "busy-code": {"errcode": 45011, "errmsg": "api minute-quota reach limit"},
    "system-code": {"errcode": -1, "errmsg": "system error"},
}


@get("/sns/jscode2session", sync_to_thread=False)
def code2session(request: Request) -> dict:
    params = request.query_params
    if (params.get("appid"), params.get("secret"), params.get("grant_type")) != (
        APP_ID,
        APP_SECRET,
        "authorization_code",
    ):
        return {"errcode": 40013, "errmsg": "invalid appid"}
    return ANSWERS.get(params.get("js_code"), {"errcode": 40029, "errmsg": "invalid code"})


TOKENS_ISSUED: list[str] = []
REVOKED: set[str] = set()
PHONES = {
    "phone-ours": {
        "phoneNumber": "13700137000",
        "purePhoneNumber": "13700137000",
        "countryCode": "86",
        "watermark": {"timestamp": 1, "appid": APP_ID},
    },
    "phone-foreign": {
        "phoneNumber": "13600136000",
        "purePhoneNumber": "13600136000",
        "countryCode": "86",
        "watermark": {"timestamp": 1, "appid": "wxForeignApp"},
    },
}


@get("/cgi-bin/token", sync_to_thread=False)
def access_token(request: Request) -> dict:
    if (request.query_params.get("appid"), request.query_params.get("secret")) != (APP_ID, APP_SECRET):
        return {"errcode": 40013, "errmsg": "invalid appid"}
    token = f"token-{len(TOKENS_ISSUED) + 1}"
    TOKENS_ISSUED.append(token)
    return {"access_token": token, "expires_in": 7200}


@post("/wxa/business/getuserphonenumber", sync_to_thread=False, status_code=200)
def phone_number(request: Request, data: JSONBody[dict]) -> dict:
    token = request.query_params.get("access_token")
    if token not in TOKENS_ISSUED or token in REVOKED:
        return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
    if data.get("code") not in PHONES:
        return {"errcode": 40029, "errmsg": "invalid code"}
    return {"errcode": 0, "errmsg": "ok", "phone_info": PHONES[data["code"]]}


@pytest.fixture(scope="module")
def fake_wechat():
    server = uvicorn.Server(
        uvicorn.Config(
            Litestar([code2session, access_token, phone_number]),
            host="127.0.0.1",
            port=0,
            log_level="error",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def wechat_client(make_client, fake_wechat, wechatpay_credentials):
    return make_client(
        **wechatpay_credentials, wechat_app_id=APP_ID, wechat_app_secret=APP_SECRET, wechat_api_base=fake_wechat
    )


async def test_good_code_logs_in_and_session_key_stays_on_the_server(wechat_client):
    async with wechat_client as client:
        response = await client.post("/api/v1/auth/miniprogram/login", json={"code": "good-code"})
        assert response.status_code == 200, response.text
        assert response.json()["isNew"] is True
        assert "SECRET-SESSION-KEY" not in response.text
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {response.json()['accessToken']}"})
        assert me.json()["id"] == response.json()["member"]["id"]


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("used-code", 401, "auth.invalid_code"),
        ("bad-code", 401, "auth.invalid_code"),
        ("busy-code", 429, "auth.wechat_rate_limited"),
        ("system-code", 502, "auth.wechat_unavailable"),
    ],
)
async def test_wechat_refusals_map_to_clear_errors(wechat_client, code, status, error):
    async with wechat_client as client:
        response = await client.post("/api/v1/auth/miniprogram/login", json={"code": code})
        assert response.status_code == status
        assert response.json()["code"] == error
    assert await Member.count() == 0


async def test_wechat_unreachable_is_502(make_client, unused_tcp_port, wechatpay_credentials):
    async with make_client(
        **wechatpay_credentials,
        wechat_app_id=APP_ID,
        wechat_app_secret=APP_SECRET,
        wechat_api_base=f"http://127.0.0.1:{unused_tcp_port}",
    ) as client:
        response = await client.post("/api/v1/auth/miniprogram/login", json={"code": "good-code"})
        assert response.status_code == 502 and response.json()["code"] == "auth.wechat_unavailable"


async def test_phone_numbers_come_from_wechat_with_a_cached_token(wechat_client):
    async with wechat_client as client:
        login = (await client.post("/api/v1/auth/miniprogram/login", json={"code": "good-code"})).json()
        headers = {"Authorization": f"Bearer {login['accessToken']}"}
        issued_before = len(TOKENS_ISSUED)
        bound = await client.post("/api/v1/me/phone", json={"code": "phone-ours"}, headers=headers)
        assert bound.status_code == 200, bound.text
        assert bound.json()["phoneMasked"] == "137****7000"
        foreign = await client.post("/api/v1/me/phone", json={"code": "phone-foreign"}, headers=headers)
        assert foreign.status_code == 422 and foreign.json()["code"] == "members.phone_watermark_mismatch"
        bad = await client.post("/api/v1/me/phone", json={"code": "phone-unknown"}, headers=headers)
        assert bad.status_code == 422 and bad.json()["code"] == "members.invalid_phone_code"
        assert len(TOKENS_ISSUED) == issued_before + 1  # one access token served all three calls
        REVOKED.add(TOKENS_ISSUED[-1])  # WeChat revokes it: the client fetches a new one and retries once
        again = await client.post("/api/v1/me/phone", json={"code": "phone-ours"}, headers=headers)
        assert again.status_code == 200 and len(TOKENS_ISSUED) == issued_before + 2
    phones = await MemberIdentity.select(MemberIdentity.value).where(MemberIdentity.kind == IdentityKind.phone)
    assert phones == [{"value": "+8613700137000"}]
