"""The CLI's demo seed is idempotent and its staff can sign in."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from backend.cli import DEMO_STAFF, DEMO_STORES, demo_password, seed_demo
from backend.stores.tables import Staff, StaffStore, Store

ROOT = Path(__file__).resolve().parent.parent


async def test_seed_demo_twice_gives_the_same_data(client, settings):
    first = await seed_demo("demo-password-123", app_id=settings.wechat_app_id)
    # and a referral and a group-buy campaign, the fruit range stocked at every store, and a member with a phone
    assert len(first) == len(DEMO_STORES) + len(DEMO_STAFF) + 5
    assert first[-5:] == [
        "referral campaign",
        "group-buy campaign",
        "10 products",
        "stock at 3 stores",
        "member 王小明 (138****8000)",
    ]
    assert await seed_demo("a-different-password", app_id=settings.wechat_app_id) == []
    assert sorted(r["code"] for r in await Store.select(Store.code)) == ["S001", "S002", "S003"]
    assert await Staff.count() == 4 and await StaffStore.count() == 3
    response = await client.post(
        "/api/v1/auth/staff/login", json={"username": "cashier2", "password": "demo-password-123"}
    )
    assert response.status_code == 200
    s002 = (await Store.select(Store.id).where(Store.code == "S002").first())["id"]
    assert response.json()["staff"]["storeIds"] == [s002]

    page = (await client.get(f"/api/v1/stores/{s002}/products", params={"limit": 100})).json()
    assert len(page["items"]) == 10 and all(p["images"] and p["skus"][0]["stockLeft"] > 0 for p in page["items"])
    photo = await client.get(page["items"][0]["images"][0])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    durian = (await client.get(f"/api/v1/stores/{s002}/products", params={"q": "榴莲"})).json()["items"]
    assert sorted(p["title"] for p in durian) == ["猫山王榴莲", "金枕榴莲"]
    assert durian[-1]["skus"][0]["priceFen"] == 19900 - 100  # S002's own price

    # HQ finds the demo member by phone.
    hq = await client.post("/api/v1/auth/staff/login", json={"username": "hq", "password": "demo-password-123"})
    headers = {"Authorization": f"Bearer {hq.json()['accessToken']}"}
    found = (await client.get("/api/v1/admin/members", headers=headers, params={"q": "13800138000"})).json()
    assert [(m["nickname"], m["phoneMasked"], m["enrolledVia"]) for m in found["items"]] == [
        ("王小明", "138****8000", "miniprogram")
    ]


def test_demo_password_is_generated_once_or_taken_from_the_environment(tmp_path):
    password, generated = demo_password({}, tmp_path)
    assert generated and len(password) >= 12
    assert demo_password({}, tmp_path) == (password, False)
    assert demo_password({"DEMO_PASSWORD": "from-env-pass"}, tmp_path) == ("from-env-pass", False)


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backend", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_config_prints_the_settings_in_effect_with_secrets_masked():
    done = _cli("check-config", SECRET_KEY="x" * 40 + "-the-secret", WORKERS="1")
    assert done.returncode == 0, done.stderr
    assert "-the-secret" not in done.stdout and "SECRET_KEY" in done.stdout and "(set, masked)" in done.stdout
    assert "PAYMENT_PROVIDER" in done.stdout and done.stdout.rstrip().endswith("configuration ok")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ARGON2_TIME_COST": "abc"}, "ARGON2_TIME_COST must be a whole number"),
        ({"APP_ENV": "production"}, "PAYMENT_PROVIDER=sandbox is refused"),
        ({"WORKERS": "4", "DATABASE_URL": "sqlite:///var/several.sqlite3"}, "WORKERS above 1 needs PostgreSQL"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 characters"),
    ],
    ids=["argon2-not-a-number", "production-sandbox", "workers-on-sqlite", "short-secret"],
)
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_bad_setting_stops_every_command_with_its_name_and_no_traceback(env, named, command):
    done = _cli(command, **env)
    assert done.returncode != 0
    assert f"configuration error: {named}" in done.stderr and "Traceback" not in done.stderr


async def test_migration_runs_started_together_wait_for_each_other():
    url = os.environ["DATABASE_URL"]
    if not url.startswith("postgres"):
        pytest.skip("the advisory lock is PostgreSQL's: the embedded database is migrated by its one host")
    name = f"mall_migrate_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    fresh = url.rsplit("/", 1)[0] + "/" + name
    try:
        env = {**os.environ, "DATABASE_URL": fresh}
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "backend", "migrate"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [run.communicate(timeout=300) for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
        database = await asyncpg.connect(fresh)
        try:
            applied = [row["name"] for row in await database.fetch("SELECT name FROM migration")]
        finally:
            await database.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    migrations = sorted(path.stem for path in (ROOT / "migrations").glob("backend_*.py"))
    assert sorted(applied) == sorted(set(applied)) and len(applied) == len(migrations)
