"""The capacity plan's figures (docs/capacity.md): what the scale-out database holds and how its hot paths answer.

Run by scripts/capacity, which starts PostgreSQL (fsync on) and Redis on loopback. The app is served on them with
one worker; each hot path is timed on the demo's nearly empty database, the chain is seeded as scripts/seed-scale
seeds it (members, orders and their ledger), the store report's days are rolled up as the sweeper would, and each
path is timed again. Printed and written to var/capacity/latest.json: rows, table and index bytes of every table
(and per million rows), each path's p50 and p99 on both databases, and the plan PostgreSQL chose for each statement
each path sent, captured from the server's log (log_statement = all) as scripts/bench's pgbench-checkout-shape does.
"""

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (
    DEMO_PASSWORD,
    PYTHON,
    ROOT,
    _logged_statements,
    api_json,
    free_port,
    post_json,
    start_server,
    store_id_of,
)
from bench import (  # noqa: E402  (a script beside this one)
    OUT as BENCH_OUT,
)

OUT = ROOT / "var" / "capacity"

Request = tuple[str, str, dict | None, str | None]  # method, path, JSON body, bearer token


def progress(message: str) -> None:
    print(f"[capacity] {message}", file=sys.stderr, flush=True)


def send(url: str, request: Request) -> dict:
    method, path, body, token = request
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(
        urllib.request.Request(url + path, data=data, headers=headers, method=method), timeout=60
    ) as response:
        text = response.read()
        return json.loads(text) if text.startswith((b"{", b"[")) else {}


def sign_in(url: str, openid: str) -> tuple[int, str]:
    code = post_json(f"{url}/api/v1/sandbox/wechat/login-codes", {"openid": openid})["code"]
    login = post_json(f"{url}/api/v1/auth/miniprogram/login", {"code": code})
    return login["member"]["id"], login["accessToken"]


class HotPaths:
    """Each hot path as a maker of one request; what a request needs that is not timed (a payment code, a new
    shopper) is made by the maker, before the clock starts."""

    def __init__(self, url: str, shopper_openid: str) -> None:
        self.url = url
        self.store = store_id_of(url)
        self.cashier = post_json(f"{url}/api/v1/auth/staff/login", {"username": "cashier1", "password": DEMO_PASSWORD})[
            "accessToken"
        ]
        self.hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})[
            "accessToken"
        ]
        self.shopper = sign_in(url, shopper_openid)[1]  # the reads' member
        self.payer = sign_in(url, f"oCapPayer{secrets.token_hex(8)}")[1]  # the store-code payments' own
        now = datetime.now(UTC)
        self.campaign = post_json(
            f"{url}/api/v1/admin/groupbuy/campaigns",
            {
                "title": f"容量 拼团 {secrets.token_hex(3)}",
                "productName": "金枕榴莲",
                "priceFen": 9900,
                "originalPriceFen": 15800,
                "groupSize": 50,
                "groupTtlMinutes": 1440,
                "stock": 100_000,
                "perMemberLimit": 1,
                "startsAt": (now - timedelta(minutes=1)).isoformat(),
                "endsAt": (now + timedelta(days=2)).isoformat(),
                "pickupStoreIds": [self.store],
                "pickupDate": (now + timedelta(days=3)).date().isoformat(),
            },
            {"Authorization": f"Bearer {self.hq}"},
        )["id"]
        self.today = (now + timedelta(hours=8)).date()
        self.serial = 0

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def checkout(self) -> Request:
        n, tag = self._next(), secrets.token_hex(6)
        code = post_json(f"{self.url}/api/v1/sandbox/wallets/oCap{tag}{n:08d}/payment-codes", {})["authCode"]
        body = {"storeId": self.store, "amountFen": 1234, "authCode": code, "idempotencyKey": f"capacity-{tag}-{n}"}
        return "POST", "/api/v1/cashier/orders", body, self.cashier

    def store_payment(self) -> Request:
        return "POST", f"/api/v1/stores/{self.store}/payments", {"amountFen": 2000}, self.payer

    def seat(self) -> Request:
        _, token = sign_in(self.url, f"oCapSeat{secrets.token_hex(6)}{self._next():06d}")
        body = {"pickupStoreId": self.store, "quantity": 1}
        return "POST", f"/api/v1/groupbuy/campaigns/{self.campaign}/groups", body, token

    def my_orders(self) -> Request:
        return "GET", "/api/v1/me/orders?limit=20", None, self.shopper

    def my_points(self) -> Request:
        return "GET", "/api/v1/me/points/entries?limit=20", None, self.shopper

    def member_search(self) -> Request:
        return "GET", "/api/v1/admin/members?q=13800138000", None, self.hq

    def report_30_days(self) -> Request:
        first = self.today - timedelta(days=29)
        return "GET", f"/api/v1/admin/reports/stores?from={first}&to={self.today}", None, self.hq

    def all(self) -> dict[str, Callable[[], Request]]:
        return {
            "checkout-micropay": self.checkout,
            "store-code-payment": self.store_payment,
            "groupbuy-seat": self.seat,
            "me-orders": self.my_orders,
            "me-points-entries": self.my_points,
            "admin-member-search": self.member_search,
            "report-stores-30d": self.report_30_days,
        }


def time_paths(url: str, paths: HotPaths, samples: int) -> dict[str, dict[str, float]]:
    """Each path `samples` times, one request at a time: its latency alone, not under load (scripts/bench's part)."""
    figures = {}
    for name, make in paths.all().items():
        count = max(5, samples // 10) if name.startswith("report") else samples
        for _ in range(5):  # warm: the worker's caches and prepared statements, the server's buffers
            send(url, make())
        times = []
        for _ in range(count):
            request = make()
            started = time.perf_counter()
            send(url, request)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        figures[name] = {
            "p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
            "samples": count,
        }
        progress(f"{name}: p50 {figures[name]['p50_ms']} ms, p99 {figures[name]['p99_ms']} ms")
    return figures


_PLACEHOLDER = re.compile(r"\$(\d+)\b")
_SCAN = re.compile(r"((?:Parallel )?(?:Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)"
                   r"(?: Backward)?(?: using \w+)? on \w+)")  # fmt: skip


async def plans(url: str, dsn: str, log: Path, paths: HotPaths) -> dict[str, list[dict[str, object]]]:
    """Every statement one request of each path sends, as the server logged it, with the plan chosen for it."""
    connection = await asyncpg.connect(dsn)
    found: dict[str, list[dict[str, object]]] = {}
    try:
        for name, make in paths.all().items():
            request = make()
            offset = log.stat().st_size
            await connection.execute("ALTER SYSTEM SET log_statement = 'all'")
            await connection.execute("SELECT pg_reload_conf()")
            await asyncio.sleep(0.3)
            await asyncio.to_thread(send, url, request)
            await connection.execute("ALTER SYSTEM RESET log_statement")
            await connection.execute("SELECT pg_reload_conf()")
            await asyncio.sleep(0.3)
            with log.open(errors="replace") as file:
                file.seek(offset)
                statements = _logged_statements(file.read().splitlines())
            found[name] = []
            for sql, parameters in statements:
                if not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
                    continue
                literal = _PLACEHOLDER.sub(lambda m, p=parameters: p.get(int(m.group(1)), "NULL"), sql)
                try:
                    plan = [row[0] for row in await connection.fetch(f"EXPLAIN {literal}")]
                except asyncpg.PostgresError as error:
                    plan = [f"(not explained: {error.__class__.__name__})"]
                scans = sorted({match for line in plan for match in _SCAN.findall(line)})
                found[name].append({"sql": " ".join(sql.split())[:300], "scans": scans, "plan": plan})
    finally:
        await connection.close()
    return found


SIZES = """
SELECT c.relname AS "table", c.reltuples::bigint AS "estimated_rows", pg_relation_size(c.oid) AS "table_bytes",
       pg_indexes_size(c.oid) AS "index_bytes", pg_total_relation_size(c.oid) AS "total_bytes"
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE 'piccolo%'
ORDER BY pg_total_relation_size(c.oid) DESC
"""


async def sizes(dsn: str) -> list[dict[str, object]]:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM ANALYZE")
        rows = [dict(row) for row in await connection.fetch(SIZES)]
        for row in rows[:14]:  # the large ones, counted exactly
            row["rows"] = await connection.fetchval(f'SELECT count(*) FROM "{row["table"]}"')
        for row in rows:
            count = row.get("rows", row["estimated_rows"])
            row["rows"] = max(0, int(count))
            per_million = 1_000_000 / row["rows"] if row["rows"] >= 1000 else None
            row["mib_per_million_rows"] = round(row["total_bytes"] * per_million / 2**20, 1) if per_million else None
        settings = {
            name: await connection.fetchval(f"SHOW {name}")
            for name in ("shared_buffers", "work_mem", "max_connections", "fsync", "server_version")
        }
        return [{"settings": settings}, *rows]
    finally:
        await connection.close()


def cli(env: dict[str, str], *command: str) -> str:
    done = subprocess.run([PYTHON, *command], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return (done.stdout + done.stderr).strip().splitlines()[-1] if (done.stdout + done.stderr).strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--stores", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--samples", type=int, default=200, help="requests timed per path (a tenth for reports)")
    args = parser.parse_args()
    dsn, log = os.environ["CAPACITY_DATABASE_URL"], Path(os.environ["CAPACITY_PG_LOG"])
    OUT.mkdir(parents=True, exist_ok=True)
    BENCH_OUT.mkdir(parents=True, exist_ok=True)  # the server's log goes there
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": os.environ["CAPACITY_REDIS_URL"],
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WORKERS": "1",
        "RATE_LIMIT_PER_MINUTE": str(10**9),
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "PAYMENT_PROVIDER": "sandbox",
        "SWEEP_INTERVAL_SECONDS": "0",  # the roll-up is run by hand below; nothing else moves under the timings
        "VAR_DIR": str(OUT / "var"),
    }
    url = f"http://127.0.0.1:{port}"
    result: dict[str, object] = {"seed": vars(args)}
    server = start_server(env, port, None)
    try:
        progress("the empty database (the demo's stores, staff and a member)")
        paths = HotPaths(url, "oCapacityEmpty000000000001")
        result["empty"] = {"latency": time_paths(url, paths, args.samples), "sizes": asyncio.run(sizes(dsn))}
    finally:
        server.terminate()
        server.wait(30)

    progress(f"seeding {args.members:,} members and {args.orders:,} orders at {args.stores:,} stores")
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, str(ROOT / "scripts" / "seed_scale.py"), "--members", str(args.members), "--orders",
         str(args.orders), "--stores", str(args.stores), "--days", str(args.days)],
        env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit("seeding failed")
    result["seed_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    result["roll_up"] = cli(env, "-m", "backend", "roll-up-reports")
    result["roll_up_seconds"] = round(time.perf_counter() - started, 1)
    progress(f"seeded in {result['seed_seconds']} s; {result['roll_up']}")
    result["seeded_sizes"] = asyncio.run(sizes(dsn))

    server = start_server(env, port, None)
    try:
        seeded = asyncio.run(_a_seeded_member(dsn))
        paths = HotPaths(url, seeded)
        mine = api_json(url, "/api/v1/me/orders?limit=20", paths.shopper)
        progress(f"the seeded shopper {seeded} has {len(mine['items'])} orders on their first page")
        if not mine["items"]:
            raise SystemExit("the seeded shopper has no orders: the seed's identities are not the app's")
        result["seeded"] = {"latency": time_paths(url, paths, args.samples)}
        result["plans"] = asyncio.run(plans(url, dsn, log, paths))
    finally:
        server.terminate()
        server.wait(30)
    (OUT / "latest.json").write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    report(result)


async def _a_seeded_member(dsn: str) -> str:
    """The openid of the seeded member with the most orders (of the first thousand): the heaviest reader."""
    connection = await asyncpg.connect(dsn)
    try:
        value = await connection.fetchval(
            "SELECT i.value FROM member_identity i JOIN (SELECT member, count(*) AS n FROM sale_order "
            "WHERE member IN (SELECT member FROM member_identity WHERE value LIKE '%:oRpt%' "
            "ORDER BY member LIMIT 1000) "
            "GROUP BY member ORDER BY n DESC LIMIT 1) o ON o.member = i.member WHERE i.kind = 'wechat_openid'"
        )
        return value.split(":", 1)[1]  # the identity is the mini-program's app id and the openid
    finally:
        await connection.close()


def report(result: dict) -> None:
    print("\n| path | empty p50 ms | empty p99 ms | seeded p50 ms | seeded p99 ms |\n|---|---:|---:|---:|---:|")
    for name, empty in result["empty"]["latency"].items():
        seeded = result["seeded"]["latency"][name]
        print(f"| {name} | {empty['p50_ms']} | {empty['p99_ms']} | {seeded['p50_ms']} | {seeded['p99_ms']} |")
    settings, *tables = result["seeded_sizes"]
    print(f"\nPostgreSQL settings: {settings['settings']}")
    print("\n| table | rows | table MiB | index MiB | total MiB | MiB per million rows |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in tables:
        if row["total_bytes"] < 1 << 20:
            continue
        print(
            f"| {row['table']} | {row['rows']:,} | {row['table_bytes'] / 2**20:.0f} | {row['index_bytes'] / 2**20:.0f}"
            f" | {row['total_bytes'] / 2**20:.0f} | {row['mib_per_million_rows']} |"
        )
    print(f"\nseeded in {result['seed_seconds']} s; {result['roll_up']} ({result['roll_up_seconds']} s)")
    print("\nplans (scans per statement):")
    for name, statements in result["plans"].items():
        print(f"- {name}:")
        for statement in statements:
            print(f"  - {', '.join(statement['scans']) or 'no scan'}: {statement['sql'][:140]}")
    print(f"\nwritten: {(OUT / 'latest.json').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
