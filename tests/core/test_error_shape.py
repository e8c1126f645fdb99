"""Every failure answers {"code", "message", "details"} with the right status, and changes nothing."""

import logging

import pytest
from litestar import get
from litestar.exceptions import InternalServerException

from backend.app import create_app
from backend.members.tables import Member
from backend.sandbox.tables import SandboxLoginCode
from tests.conftest import serve

LOGIN_CODES = "/api/v1/sandbox/wechat/login-codes"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert body["message"]
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        pytest.param(b"{not json", 400, "request.malformed_json", id="malformed-json"),
        pytest.param(b'{"openid": 5}', 422, "request.invalid", id="wrong-type"),
        pytest.param(b'{"openid": "ab"}', 422, "request.invalid", id="too-short"),
        pytest.param(b'{"pointsBalance": 100}', 422, "request.invalid", id="unknown-field"),
        pytest.param(b"[1, 2]", 422, "request.invalid", id="array-not-object"),
    ],
)
async def test_bad_bodies_get_their_code_and_store_nothing(client, content, status, code):
    response = await client.post(LOGIN_CODES, content=content, headers={"content-type": "application/json"})
    assert_error(response, status, code)
    assert await SandboxLoginCode.count() == 0


async def test_validation_errors_name_the_offending_fields(client):
    body = assert_error(await client.post(LOGIN_CODES, json={"openid": 5, "role": "hq_admin"}), 422, "request.invalid")
    assert [f["field"] for f in body["details"]["fields"]] in (["openid"], ["role"])
    body = assert_error(await client.post(LOGIN_CODES, json={"role": "hq_admin"}), 422, "request.invalid")
    assert body["details"]["fields"][0]["field"] == "role"


async def test_oversized_body_is_refused(make_client):
    async with make_client(max_body_bytes=2048) as client:
        response = await client.post(
            LOGIN_CODES, content=b'{"openid": "' + b"a" * 4096 + b'"}', headers={"content-type": "application/json"}
        )
        assert_error(response, 413, "request.too_large")
    assert await SandboxLoginCode.count() == 0


async def test_unknown_route_and_method_use_the_same_shape(client):
    assert_error(await client.get("/api/v1/nothing-here"), 404, "request.not_found")
    assert_error(await client.delete("/api/v1/stores"), 405, "request.method_not_allowed")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def get_logging_errors(handler, path: str, **headers: str):
    """Serve `handler` at `path` in a fresh app; answer the response and the error records logged."""
    app = create_app()
    app.register(handler)
    collect = Collect()
    errors = logging.getLogger("backend.core.errors")
    async with serve(app) as client:  # startup configures logging; listen after it
        errors.addHandler(collect)
        try:
            response = await client.get(path, headers=headers)
        finally:
            errors.removeHandler(collect)
    return response, collect.records


async def test_unexpected_failure_is_500_with_request_id_logged_and_no_trace():
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internals")

    response, logged = await get_logging_errors(boom, "/boom", **{"X-Request-ID": "till-42-request-0001"})
    body = assert_error(response, 500, "internal.error")
    assert body["details"]["requestId"] == "till-42-request-0001"
    assert response.headers["x-request-id"] == "till-42-request-0001"
    assert "secret internals" not in response.text
    assert [r.request_id for r in logged] == ["till-42-request-0001"] and logged[0].exc_info is not None


async def test_a_framework_500_is_logged_with_its_request_id_too():
    @get("/framework-boom", sync_to_thread=False)
    def framework_boom() -> None:
        raise InternalServerException("misconfigured dependency")

    response, logged = await get_logging_errors(framework_boom, "/framework-boom")
    body = assert_error(response, 500, "internal.error")
    assert body["details"]["requestId"] == response.headers["x-request-id"]
    assert [r.request_id for r in logged] == [body["details"]["requestId"]]


async def test_every_response_carries_a_request_id(client):
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert len(first.headers["x-request-id"]) >= 16
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_member_count_unchanged_by_a_refused_login(client):
    response = await client.post("/api/v1/auth/miniprogram/login", json={"code": "never-issued"})
    assert_error(response, 401, "auth.invalid_code")
    assert await Member.count() == 0
