"""The coarse per-client limit, counted through the KV port."""

from prometheus_client.parser import text_string_to_metric_families

from backend.core import metrics
from backend.core.kv import RedisKV
from backend.core.ratelimit import RateLimitMiddleware


async def test_a_client_past_its_limit_gets_429_and_health_stays_open(make_client):
    async with make_client(rate_limit_per_minute=5) as client:
        statuses = [(await client.get("/api/v1/stores")).status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        refused = await client.get("/api/v1/stores")
        assert refused.json()["code"] == "request.rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_zero_disables_the_limit(make_client):
    async with make_client(rate_limit_per_minute=0) as client:
        assert {(await client.get("/api/v1/stores")).status_code for _ in range(20)} == {200}


async def test_a_kv_that_does_not_answer_lets_requests_through_counted_as_kv_errors(unused_tcp_port):
    # A real Redis client aimed where nothing listens: every call is refused, as when Redis is down.
    kv = RedisKV(f"redis://127.0.0.1:{unused_tcp_port}/0", timeout=0.5)
    served: list[int] = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message):
        if message["type"] == "http.response.start":
            served.append(message["status"])

    limiter = RateLimitMiddleware(app, kv=kv, limit=1)
    before = kv_errors()
    scope = {"type": "http", "path": "/api/v1/stores", "method": "GET", "client": ("198.51.100.7", 4000)}
    for _ in range(3):
        await limiter(scope, None, send)
    await kv.close()
    assert served == [204, 204, 204]  # the limit of 1 was not applied: nothing could count it
    assert kv_errors() == before + 3


def kv_errors() -> float:
    families = text_string_to_metric_families(metrics.exposition().decode())
    samples = [s for f in families for s in f.samples if s.name == "mall_dependency_errors_total"]
    return sum(s.value for s in samples if s.labels == {"dependency": "kv"})
