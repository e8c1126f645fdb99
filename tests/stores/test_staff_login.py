"""Staff sign-in: argon2 passwords, failures limited per username and per client."""

import asyncio

from backend.settings import Settings
from tests.conftest import PASSWORD


async def login(client, username: str, password: str):
    return await client.post("/api/v1/auth/staff/login", json={"username": username, "password": password})


async def test_right_password_signs_in_and_wrong_one_does_not(client, demo):
    ok = await login(client, "cashier1", PASSWORD)
    assert ok.status_code == 200
    assert ok.json()["staff"]["role"] == "cashier" and ok.json()["expiresIn"] > 0
    wrong = await login(client, "cashier1", "not-the-password")
    unknown = await login(client, "nobody", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()  # a miss tells nothing about which half was wrong
    assert wrong.json()["code"] == "auth.invalid_credentials"


async def test_failures_lock_the_username_even_for_the_right_password(make_client, demo):
    async with make_client(login_failure_limit=3) as client:
        assert [(await login(client, "cashier1", f"guess-{i}")).status_code for i in range(3)] == [401] * 3
        locked = await login(client, "cashier1", PASSWORD)
        assert locked.status_code == 429
        assert locked.json()["code"] == "auth.too_many_attempts"
        assert int(locked.headers["retry-after"]) > 0
        # Another account is not locked by the guesses at this one.
        assert (await login(client, "cashier2", PASSWORD)).status_code == 200


async def test_failures_across_usernames_lock_the_client(make_client, demo):
    async with make_client(login_failure_limit_per_client=4) as client:
        statuses = [(await login(client, f"user{i}", "guess")).status_code for i in range(6)]
        assert statuses == [401] * 4 + [429] * 2
        assert (await login(client, "cashier1", PASSWORD)).status_code == 429


async def test_the_window_ends(make_client, demo):
    settings = Settings.from_env()
    async with make_client(settings, login_failure_limit=1, login_failure_window_seconds=1) as client:
        assert (await login(client, "cashier1", "guess")).status_code == 401
        assert (await login(client, "cashier1", PASSWORD)).status_code == 429
        await asyncio.sleep(1.1)
        assert (await login(client, "cashier1", PASSWORD)).status_code == 200


async def test_concurrent_guesses_cannot_slip_past_the_limit(make_client, demo):
    async with make_client(login_failure_limit=5) as client:
        responses = await asyncio.gather(*(login(client, "cashier1", f"guess-{i}") for i in range(30)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [401] * 5 + [429] * 25  # only five passwords were ever checked
        assert (await login(client, "cashier1", PASSWORD)).status_code == 429


async def test_successes_do_not_use_up_the_limit(make_client, demo):
    async with make_client(login_failure_limit=3, login_failure_limit_per_client=3) as client:
        for _ in range(10):
            assert (await login(client, "cashier1", PASSWORD)).status_code == 200
        assert (await login(client, "cashier1", "guess")).status_code == 401
        assert (await login(client, "cashier1", PASSWORD)).status_code == 200
