"""The scale-out deployment through Redis and PostgreSQL faults, on real servers started for the tests.

Redis killed in the middle of a flash sale and started again empty; Redis down for good, each use of it
failing open or closed as it says; PostgreSQL paused (SIGSTOP) while payment notifications arrive.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from backend.groupbuy.tables import Campaign, Seat
from backend.sandbox.keys import load_sandbox_keys
from backend.sandbox.notify import SandboxNotifier, transaction_payload
from backend.settings import Settings
from tests.cashier.test_refunds import refund
from tests.cashier.test_till_checkout import payment_code, scan
from tests.conftest import PASSWORD, ROOT, SCALE_OUT, member_login, served_process, staff_login
from tests.groupbuy.test_seat_payments import confirm
from tests.groupbuy.test_seats import join, new_campaign, open_group, shoppers
from tests.members.test_merge import phone_code
from tests.referrals.test_referrals import new_campaign as new_referral_campaign
from tests.servers import PostgresProcess, RedisProcess

pytestmark = pytest.mark.skipif(not SCALE_OUT, reason="the scale-out deployment's Redis and PostgreSQL")

ANSWERED = {201, 409, 503}  # a seat, sold out, or kv.unavailable: never a 500, never a hang


def on_redis(settings: Settings, redis: RedisProcess, **changes: object) -> Settings:
    return replace(settings, redis_url=redis.url, **changes)


async def test_a_flash_sale_through_redis_killed_and_started_empty_never_oversells(
    make_client, settings, demo, redis_process
):
    async with make_client(on_redis(settings, redis_process)) as client:
        campaign = await new_campaign(client, demo, stock=100, groupSize=20, perMemberLimit=1)
        members = await shoppers(client, 168, prefix="oFault")
        groups = [
            (await open_group(client, leader, campaign["id"], demo["S001"])).json()["group"]["id"]
            for leader in members[:8]
        ]
        buyers = members[8:]

        async def wave(part: list[dict]) -> list[httpx.Response]:
            return await asyncio.wait_for(
                asyncio.gather(*(join(client, m, groups[i % 8], demo["S001"]) for i, m in enumerate(part))), 30
            )

        async def kill_soon() -> None:
            await asyncio.sleep(0.05)
            await asyncio.to_thread(redis_process.kill)

        before = await wave(buyers[:40])  # the gate in Redis decides the sold-out answers
        during, _ = await asyncio.gather(wave(buyers[40:80]), kill_soon())  # killed in the middle
        down = await wave(buyers[80:120])  # no Redis at all: the database decides alone
        await asyncio.to_thread(redis_process.start)  # empty: the gate is rebuilt from the database
        after = await wave(buyers[120:])
        answers = before + during + down + after
        assert {a.status_code for a in answers} <= ANSWERED, [a.text for a in answers if a.status_code not in ANSWERED]
        assert sum(a.status_code == 201 for a in answers) == 92  # 8 leaders' seats and 92 more: the stock
        assert all(a.json()["code"] == "groupbuy.sold_out" for a in answers if a.status_code == 409)
        assert {a.status_code for a in down} <= {201, 409}  # served from the database while Redis was down
        assert await Seat.count() == 100
        assert (await Campaign.select(Campaign.stock_left).first())["stock_left"] == 0
        redis = Redis.from_url(redis_process.url)
        try:
            late = await join(client, members[0], groups[1], demo["S001"])
            assert late.status_code == 409 and late.json()["code"] == "groupbuy.sold_out"
            assert await redis.get(f"mall:groupbuy:stock:{campaign['id']}") == b"0"  # rebuilt, from the database
        finally:
            await redis.aclose()


async def test_with_redis_down_each_use_fails_open_or_closed_as_it_says(make_client, settings, demo, redis_process):
    async with make_client(on_redis(settings, redis_process, rate_limit_per_minute=40)) as client:
        campaign = await new_campaign(client, demo, stock=10, groupSize=5, perMemberLimit=1)
        shopper = await member_login(client, openid="oFaultShopper0000000001")
        cashier = await staff_login(client, "cashier1")
        code = (await client.get("/api/v1/me/member-code", headers=shopper["headers"])).json()["code"]
        referral = await new_referral_campaign(client)
        assert (await client.get("/healthz")).status_code == 200  # the exempt paths do not count
        limited = [(await client.get("/api/v1/stores")).status_code for _ in range(40)]
        assert limited[-1] == 429  # the limit holds while Redis answers (the requests above counted too)
        redis_process.stop()

        # Fails open: the per-client rate limit lets every request through
        assert [(await client.get("/api/v1/stores")).status_code for _ in range(5)] == [200] * 5
        # Fails open: the stock gate and the group's campaign; the database decides
        seat = await open_group(client, shopper, campaign["id"], demo["S001"])
        assert seat.status_code == 201, seat.text
        group = seat.json()["group"]["id"]
        other = await member_login(client, openid="oFaultShopper0000000002")
        assert (await join(client, other, group, demo["S001"])).status_code == 201
        # Fails open: the referral leaderboard is counted from the database
        board = await client.get(f"/api/v1/referral-campaigns/{referral['id']}/leaderboard")
        assert board.status_code == 200 and board.json()["items"] == []
        # Fails open: the poster limit (the poster is drawn, uncounted)
        drawn = await client.get(
            "/api/v1/me/posters", params={"campaignId": referral["id"]}, headers=shopper["headers"]
        )
        assert drawn.status_code == 200 and drawn.headers["content-type"].startswith("image/")
        # Fails open: the WeChat access token is asked of WeChat instead of the cache
        bound = await client.post(
            "/api/v1/me/phone", json={"code": await phone_code(client, "13800138123")}, headers=shopper["headers"]
        )
        assert bound.status_code == 200, bound.text
        # Fails closed: the member-code replay guard, which alone keeps a code to one checkout
        lookup = await client.post("/api/v1/cashier/member-lookups", headers=cashier, json={"memberCode": code})
        assert lookup.status_code == 503 and lookup.json()["code"] == "kv.unavailable"
        assert lookup.headers["retry-after"] == "1"
        # Fails closed: the staff-login failure counters, which guard passwords
        login = await client.post("/api/v1/auth/staff/login", json={"username": "cashier1", "password": "x" * 12})
        assert login.status_code == 503 and login.json()["code"] == "kv.unavailable"

        redis_process.start()
        lookup = await client.post("/api/v1/cashier/member-lookups", headers=cashier, json={"memberCode": code})
        assert lookup.status_code == 200, lookup.text  # the code was never taken while the guard was down


def seal_paid(var_dir, secret_key: str, *, app_id: str, out_trade_no: str, paid: dict, openid: str, amount: int):
    keys = load_sandbox_keys(var_dir, secret_key)
    trade = {
        "out_trade_no": out_trade_no,
        "transaction_id": paid["transactionId"],
        "trade_type": "JSAPI",
        "openid": openid,
        "amount_fen": amount,
    }
    payload = transaction_payload(trade, mchid=keys.mchid, appid=app_id)
    return SandboxNotifier(keys, url="").seal("TRANSACTION.SUCCESS", "transaction", json.dumps(payload).encode())


def timed(call) -> tuple[httpx.Response | None, float]:
    start = time.monotonic()
    try:
        return call(), time.monotonic() - start
    except httpx.TimeoutException:
        return None, time.monotonic() - start


@contextmanager
def deployment(port: int) -> Iterator[tuple[PostgresProcess, dict[str, str]]]:
    """A PostgreSQL of its own, migrated and seeded, and the environment that serves the app on it."""
    database = PostgresProcess(port)
    database.start()
    try:
        asyncio.run(database.create_database())
        env = {
            "DATABASE_URL": database.url,
            "DEMO_PASSWORD": PASSWORD,
            "SWEEP_INTERVAL_SECONDS": "0",
            "RATE_LIMIT_PER_MINUTE": "0",
        }
        for command in ("migrate", "seed-demo"):
            subprocess.run(
                [sys.executable, "-m", "backend", command],
                env={**os.environ, **env},
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        yield database, env
    finally:
        database.stop()


def test_postgresql_paused_while_a_notification_arrives(unused_tcp_port_factory, settings):
    with deployment(unused_tcp_port_factory()) as (database, env):
        with served_process(unused_tcp_port_factory(), **env) as served, httpx.Client(base_url=served.base) as http:
            openid = "oPausedPayer00000000001"
            login = http.post("/api/v1/sandbox/wechat/login-codes", json={"openid": openid}).json()
            token = http.post("/api/v1/auth/miniprogram/login", json={"code": login["code"]}).json()["accessToken"]
            store = next(s for s in http.get("/api/v1/stores").json() if s["code"] == "S001")
            shopper = {"Authorization": f"Bearer {token}"}
            started = http.post(f"/api/v1/stores/{store['id']}/payments", headers=shopper, json={"amountFen": 2000})
            assert started.status_code == 201, started.text
            number = started.json()["outTradeNo"]
            paid = http.post(f"/api/v1/sandbox/payments/{number}/confirm", json={"deliverNotification": False})
            headers, body = seal_paid(
                settings.var_dir,
                settings.secret_key,
                app_id=settings.wechat_app_id,
                out_trade_no=number,
                paid=paid.json(),
                openid=openid,
                amount=2000,
            )

            database.pause()
            try:
                ready, seconds = timed(lambda: http.get("/readyz", timeout=10))
                assert ready is not None and ready.status_code == 503 and seconds < 5, (ready, seconds)
                assert ready.json()["checks"]["database"] == "down"
                notified, seconds = timed(
                    lambda: http.post("/api/v1/payments/wechat/notify", content=body, headers=headers, timeout=10)
                )
                assert notified is not None and seconds < 5, seconds
                assert notified.status_code >= 400  # not recorded: WeChat Pay sends it again
                again, seconds = timed(lambda: http.get("/readyz", timeout=10))
                assert again is not None and again.status_code == 503 and seconds < 5, seconds
            finally:
                database.resume()

            for _ in range(100):  # the pool opens new connections once the database answers
                if http.get("/readyz").status_code == 200:
                    break
                time.sleep(0.1)
            retried = http.post("/api/v1/payments/wechat/notify", content=body, headers=headers)
            assert retried.status_code == 204, retried.text
            replayed = http.post("/api/v1/payments/wechat/notify", content=body, headers=headers)
            assert replayed.status_code == 204
            order = http.get(f"/api/v1/me/orders/{started.json()['orderId']}", headers=shopper).json()
            assert order["status"] == "paid" and order["paidFen"] == 2000
            entries = http.get("/api/v1/me/points/entries", headers=shopper).json()["items"]
            assert [e["kind"] for e in entries] == ["earn"]  # paid once: one earning


# Deadlines short enough that the trades left open by a crash are due when the next process starts.
QUICK_DEADLINES = {
    "MICROPAY_QUERY_INTERVAL_SECONDS": "0.2",
    "MICROPAY_TIMEOUT_SECONDS": "1",
    "MICROPAY_INLINE_WAIT_SECONDS": "0.3",
    "REFUND_QUERY_INTERVAL_SECONDS": "1",
}
SCENARIOS = ("success", "password_then_success", "password_timeout", "system_error_then_success")


async def books_balance(url: str) -> dict[str, int]:
    """What must hold whatever happened: every trade and refund final, money at WeChat Pay as recorded, no order
    paid or earned twice, every points account equal to its entries. Answers the counts that should be zero."""
    connection = await asyncpg.connect(url)
    try:
        checks = {
            "open_trades": "SELECT count(*) FROM payment_trade WHERE status IN ('created', 'paying')",
            "refunds_processing": "SELECT count(*) FROM payment_refund WHERE status = 'processing'",
            "orders_paying": "SELECT count(*) FROM sale_order WHERE status = 'paying'",
            "orders_paid_twice": """
                SELECT count(*) FROM (SELECT "order" FROM payment_trade WHERE status = 'paid'
                GROUP BY "order" HAVING count(*) > 1) twice
            """,
            "money_not_as_recorded": """
                SELECT count(*) FROM sale_order o WHERE o.paid_fen - o.refunded_fen <> (
                    SELECT coalesce(sum(CASE WHEN s.state IN ('SUCCESS', 'REFUND') THEN s.amount_fen - s.refunded_fen
                                        ELSE 0 END), 0)
                    FROM payment_trade t JOIN sandbox_trade s ON s.out_trade_no = t.out_trade_no
                    WHERE t."order" = o.id)
            """,
            "earned_twice": """
                SELECT count(*) FROM (SELECT source_type, source_id FROM points_entry WHERE kind = 'earn'
                GROUP BY source_type, source_id HAVING count(*) > 1) twice
            """,
            "accounts_not_their_entries": """
                SELECT count(*) FROM points_account a WHERE (a.balance, a.debt) <> (
                    SELECT coalesce(sum(delta), 0), coalesce(sum(debt_delta), 0) FROM points_entry e
                    WHERE e.member = a.member)
            """,
        }
        return {name: await connection.fetchval(sql) for name, sql in checks.items()}
    finally:
        await connection.close()


def sweeps_run(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("mall_sweeper_runs_total{")
    )


def settled(url: str, *, until: float) -> dict[str, int]:
    while True:
        balance = asyncio.run(books_balance(url))
        if not any(balance.values()) or time.monotonic() > until:
            return balance
        time.sleep(0.2)


async def demo_stores(http: httpx.AsyncClient) -> dict[str, int]:
    return {store["code"]: store["id"] for store in (await http.get("/api/v1/stores")).json()}


def test_a_worker_killed_in_the_middle_of_checkouts_and_refunds_leaves_every_order_final(unused_tcp_port_factory):
    with deployment(unused_tcp_port_factory()) as (database, env):
        env |= QUICK_DEADLINES
        interrupted: list[BaseException] = []
        with served_process(unused_tcp_port_factory(), **env) as served:

            async def checkouts_and_refunds_then_kill() -> None:
                async with httpx.AsyncClient(base_url=served.base, timeout=15) as http:
                    demo = await demo_stores(http)
                    cashier = await staff_login(http, "cashier1")
                    paid = []
                    for i in range(8):
                        code = await payment_code(http, f"oKilled{i:019d}")
                        answer = await scan(http, cashier, demo["S001"], code, f"kill-paid-{i}", amount=5000)
                        assert answer.status_code == 201 and answer.json()["status"] == "paid", answer.text
                        paid.append(answer.json())
                    codes = [
                        await payment_code(http, f"oKilled{i:019d}", SCENARIOS[i % len(SCENARIOS)]) for i in range(40)
                    ]
                    calls = [
                        scan(http, cashier, demo["S001"], code, f"kill-checkout-{i:03d}", amount=1000 + i)
                        for i, code in enumerate(codes)
                    ] + [refund(http, cashier, order["id"], 2000, f"kill-refund-{order['id']}") for order in paid]
                    running = asyncio.gather(*calls, return_exceptions=True)
                    await asyncio.sleep(0.3)
                    served.process.kill()  # SIGKILL: no shutdown, no rollback but the database's
                    answers = await running
                    interrupted.extend(a for a in answers if isinstance(a, httpx.TransportError))
                    answered = [a for a in answers if isinstance(a, httpx.Response)]
                    assert len(answered) + len(interrupted) == len(answers), answers
                    assert all(a.status_code in (200, 201) for a in answered), [a.text for a in answered]

            asyncio.run(checkouts_and_refunds_then_kill())
        assert interrupted, "the kill came after every request had been answered"
        left = asyncio.run(books_balance(database.url))
        # The crash left outcomes nobody knows yet (which refunds were in flight depends on the moment of the kill)
        assert left["open_trades"] + left["refunds_processing"] > 0, left

        time.sleep(1.2)  # their deadlines pass while the worker is down
        with served_process(unused_tcp_port_factory(), **(env | {"SWEEP_INTERVAL_SECONDS": "3600"})) as served:
            balance = settled(database.url, until=time.monotonic() + 20)
            assert balance == dict.fromkeys(balance, 0), balance
            assert sweeps_run(served.base) == 1  # one sweep, the one the restart began with


TRADES = 80  # enough that the two sweepers' passes overlap


def test_two_instances_racing_their_sweepers_settle_each_trade_seat_and_refund_once(unused_tcp_port_factory):
    with deployment(unused_tcp_port_factory()) as (database, env):
        env |= QUICK_DEADLINES
        with served_process(unused_tcp_port_factory(), **env) as served:

            async def leave_work_due() -> None:
                async with httpx.AsyncClient(base_url=served.base, timeout=15) as http:
                    demo = await demo_stores(http)
                    cashier = await staff_login(http, "cashier1")
                    codes = [await payment_code(http, f"oRacing{i:019d}", "password_timeout") for i in range(TRADES)]
                    answers = await asyncio.gather(  # payments the shopper never confirms: queried, then reversed
                        *(
                            scan(http, cashier, demo["S001"], code, f"race-checkout-{i:03d}", amount=1500)
                            for i, code in enumerate(codes)
                        )
                    )
                    assert {a.json()["status"] for a in answers} == {"paying"}, [a.text for a in answers]
                    campaign = await new_campaign(http, demo, stock=60, groupSize=5, perMemberLimit=1)
                    members = await shoppers(http, 18, prefix="oRacer")
                    for leader, friend in zip(members[:6], members[6:12], strict=True):  # two paid seats each
                        opened = (await open_group(http, leader, campaign["id"], demo["S001"])).json()
                        await confirm(http, opened["order"]["outTradeNo"])
                        joined = (await join(http, friend, opened["group"]["id"], demo["S001"])).json()
                        await confirm(http, joined["order"]["outTradeNo"])
                    for member in members[12:]:  # seats never paid: closed at WeChat Pay when their time is up
                        await open_group(http, member, campaign["id"], demo["S002"])

            asyncio.run(leave_work_due())

        async def make_everything_due() -> None:
            connection = await asyncpg.connect(database.url)
            try:
                await connection.execute("UPDATE groupbuy_group SET expires_at = now() - interval '1 second'")
                await connection.execute(
                    "UPDATE payment_trade SET expires_at = now() - interval '1 second',"
                    " next_query_at = now() - interval '1 second' WHERE status IN ('created', 'paying')"
                )
            finally:
                await connection.close()

        racing = env | {"SWEEP_INTERVAL_SECONDS": "0.05"}
        with (
            served_process(unused_tcp_port_factory(), **racing),
            served_process(unused_tcp_port_factory(), **racing),
        ):
            asyncio.run(make_everything_due())  # both are sweeping when it all comes due
            balance = settled(database.url, until=time.monotonic() + 30)
        assert balance == dict.fromkeys(balance, 0), balance

        async def provider_side() -> list:
            connection = await asyncpg.connect(database.url)
            try:
                return [
                    await connection.fetchval(
                        "SELECT array_agg(DISTINCT reversals) FROM sandbox_trade WHERE scenario = 'password_timeout'"
                    ),
                    await connection.fetchval(
                        "SELECT count(*) FROM (SELECT out_trade_no FROM sandbox_refund"
                        " GROUP BY out_trade_no HAVING count(*) > 1) twice"
                    ),
                    await connection.fetchval("SELECT count(*) FROM sandbox_refund"),
                    await connection.fetchval("SELECT count(*) FROM groupbuy_group WHERE status = 'failed'"),
                    await connection.fetchval("SELECT count(*) FROM payment_trade WHERE status = 'reversed'"),
                    await connection.fetchval("SELECT count(*) FROM payment_trade WHERE status = 'closed'"),
                ]
            finally:
                await connection.close()

        reversals, refunded_twice, refunds, failed_groups, reversed_trades, closed_trades = asyncio.run(provider_side())
        # Each payment reversed once, by one of the two: the recall WeChat Pay asks for, then the reversal
        assert reversals == [2] and reversed_trades == TRADES
        assert refunded_twice == 0 and refunds == 12  # each paid seat of a failed group refunded once
        assert failed_groups == 12 and closed_trades == 6  # six unpaid groups too; their seats closed
