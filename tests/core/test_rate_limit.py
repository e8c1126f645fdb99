"""The coarse per-client limit, counted through the KV port."""


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
