"""The real code2session client, against a local HTTP server that answers as WeChat does."""

import threading

import pytest
import uvicorn
from litestar import Litestar, Request, get

from backend.members.tables import Member

APP_ID, APP_SECRET = "wx0123456789abcdef", "s" * 32
ANSWERS = {
    "good-code": {"openid": "oRealWeChat00000000000000001", "session_key": "SECRET-SESSION-KEY",
                  "unionid": "uRealWeChat0000000000000001"},
    "used-code": {"errcode": 40163, "errmsg": "code been used"},
    "bad-code": {"errcode": 40029, "errmsg": "invalid code"},
    "busy-code": {"errcode": 45011, "errmsg": "api minute-quota reach limit"},
    "system-code": {"errcode": -1, "errmsg": "system error"},
}


@get("/sns/jscode2session", sync_to_thread=False)
def code2session(request: Request) -> dict:
    params = request.query_params
    if (params.get("appid"), params.get("secret"), params.get("grant_type")) != (
            APP_ID, APP_SECRET, "authorization_code"):
        return {"errcode": 40013, "errmsg": "invalid appid"}
    return ANSWERS.get(params.get("js_code"), {"errcode": 40029, "errmsg": "invalid code"})


@pytest.fixture(scope="module")
def fake_wechat():
    server = uvicorn.Server(uvicorn.Config(Litestar([code2session]), host="127.0.0.1", port=0, log_level="error",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def wechat_client(make_client, fake_wechat):
    return make_client(payment_provider="wechatpay", wechat_app_id=APP_ID, wechat_app_secret=APP_SECRET,
                       wechat_api_base=fake_wechat)


async def test_good_code_logs_in_and_session_key_stays_on_the_server(wechat_client):
    async with wechat_client as client:
        response = await client.post("/api/v1/auth/miniprogram/login", json={"code": "good-code"})
        assert response.status_code == 200, response.text
        assert response.json()["isNew"] is True
        assert "SECRET-SESSION-KEY" not in response.text
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {response.json()['accessToken']}"})
        assert me.json()["id"] == response.json()["member"]["id"]


@pytest.mark.parametrize(("code", "status", "error"), [
    ("used-code", 401, "auth.invalid_code"),
    ("bad-code", 401, "auth.invalid_code"),
    ("busy-code", 429, "auth.wechat_rate_limited"),
    ("system-code", 502, "auth.wechat_unavailable"),
])
async def test_wechat_refusals_map_to_clear_errors(wechat_client, code, status, error):
    async with wechat_client as client:
        response = await client.post("/api/v1/auth/miniprogram/login", json={"code": code})
        assert response.status_code == status
        assert response.json()["code"] == error
    assert await Member.count() == 0


async def test_wechat_unreachable_is_502(make_client, unused_tcp_port):
    async with make_client(payment_provider="wechatpay", wechat_app_id=APP_ID, wechat_app_secret=APP_SECRET,
                           wechat_api_base=f"http://127.0.0.1:{unused_tcp_port}") as client:
        response = await client.post("/api/v1/auth/miniprogram/login", json={"code": "good-code"})
        assert response.status_code == 502 and response.json()["code"] == "auth.wechat_unavailable"
