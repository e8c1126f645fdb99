"""/healthz, /readyz and /schema; readiness follows Redis down and back up."""

import asyncio
import os
import shutil

import pytest

from backend.settings import Settings
from tests.servers import RedisProcess


async def test_health_and_schema(documented_client):
    client = documented_client
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/v1/auth/staff/login",
        "/api/v1/auth/miniprogram/login",
        "/api/v1/me",
        "/api/v1/admin/stores",
        "/api/v1/admin/staff",
        "/api/v1/stores",
    ):
        assert path in paths
    assert (await client.get("/schema")).status_code == 200


async def test_ready_when_database_answers(client, settings):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"
    assert ("redis" in response.json()["checks"]) == bool(settings.redis_url)


@pytest.fixture
def redis_process(unused_tcp_port):
    assert shutil.which("redis-server"), "scripts/test installs redis-server"
    process = RedisProcess(unused_tcp_port)
    process.start()
    yield process
    process.stop()


async def wait_for_status(client, status: int) -> dict:
    for _ in range(50):
        response = await client.get("/readyz")
        if response.status_code == status:
            return response.json()
        await asyncio.sleep(0.1)
    raise AssertionError(f"/readyz never answered {status}: {response.text}")


async def test_readiness_follows_redis_down_and_back(make_client, redis_process):
    settings = Settings.from_env({**os.environ, "REDIS_URL": f"redis://127.0.0.1:{redis_process.port}/0"})
    async with make_client(settings) as client:
        assert (await wait_for_status(client, 200))["checks"]["redis"] == "ok"
        redis_process.stop()
        body = await wait_for_status(client, 503)
        assert body["checks"] == {"database": "ok", "redis": "down"}
        assert body["code"] == "service.unavailable"
        redis_process.start()
        assert (await wait_for_status(client, 200))["checks"]["redis"] == "ok"
