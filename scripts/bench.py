"""Load scenarios against a real server, driven by wrk over loopback.

Each scenario is measured in the same run as the `ceiling` (a plain GET of the
same server), and reported as requests per second, p50/p99 latency and the
ratio to that ceiling. Later capabilities add their scenarios to SCENARIOS.
"""

import argparse
import asyncio
import http.client
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import asyncpg

if TYPE_CHECKING:
    from backend.sandbox.keys import SandboxKeys

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
OUT = ROOT / "var" / "bench"
DEMO_PASSWORD = "bench-demo-password"


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    body: str | None = None
    describes: str = ""
    # Builds the wrk script for scenarios whose every request differs: (base url, seconds it must last) -> Lua.
    prepare: Callable[[str, int], str] | None = None
    # The same for a warm-up run before the measured one, with requests of its own (as the ceiling is warmed up).
    warm_up: Callable[[str, int], str] | None = None


def post_json(url: str, body: dict, headers: dict[str, str] | None = None, *, timeout: float = 10) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


ISSUE_SECONDS = 20


def prepare_checkouts(url: str, seconds: int, *, part: str = "run") -> str:
    """Checkouts at the till, each by a new shopper (a new sandbox wallet) who is enrolled on payment."""
    token = post_json(f"{url}/api/v1/auth/staff/login", {"username": "cashier1", "password": DEMO_PASSWORD})[
        "accessToken"
    ]
    store_id = next(
        s["id"] for s in json.loads(urllib.request.urlopen(f"{url}/api/v1/stores").read()) if s["code"] == "S001"
    )
    wanted = 4_000 * seconds  # far more than the till can take in that time
    progress(f"checkout-micropay: issuing up to {wanted} sandbox payment codes for the {part}, one wallet each")
    # A code lives 60 s: issuing stops after ISSUE_SECONDS, so that the first is still good when the last is used.
    # Issuing one is one INSERT, a checkout some ten statements: what is issued by then outlasts the run.
    deadline = time.monotonic() + ISSUE_SECONDS

    def issue(i: int) -> str | None:
        if time.monotonic() > deadline:
            return None
        return post_json(f"{url}/api/v1/sandbox/wallets/oBench{part[0]}{i:021d}/payment-codes", {})["authCode"]

    with ThreadPoolExecutor(16) as pool:
        codes = [code for code in pool.map(issue, range(wanted)) if code is not None]
    if len(codes) < wanted:
        progress(f"checkout-micropay: {len(codes)} codes issued in {ISSUE_SECONDS} s")
    codes_file = OUT / f"payment-codes-{part}.txt"
    codes_file.write_text("\n".join(codes) + "\n")
    return (
        CHECKOUT_LUA.replace("CODES_FILE", str(codes_file))
        .replace("TOKEN", token)
        .replace("STORE_ID", str(store_id))
        .replace("PART", part)
    )


# Each wrk thread takes every THREADS-th line of LINES_FILE into `lines`, so no two threads send the same one.
THREAD_LINES_LUA = """
local threads, counter = {}, 1
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function read_lines()
  lines, n = {}, 0
  local i = 0
  for line in io.lines("LINES_FILE") do
    if i % THREADS == id - 1 then table.insert(lines, line) end
    i = i + 1
  end
end
"""

CHECKOUT_LUA = (
    THREAD_LINES_LUA.replace("LINES_FILE", "CODES_FILE")
    + """
function init(args)
  read_lines()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer TOKEN"
end
function request()
  n = n + 1
  local body = string.format(
    '{"storeId":STORE_ID,"amountFen":1234,"authCode":"%s","idempotencyKey":"bench-PART-%d-%d"}', lines[n], id, n)
  return wrk.format(nil, "/api/v1/cashier/orders", nil, body)
end
"""
)


# The SECRET_KEY this run gave the server: the bench works out its members' codes with it, as the mini-program's
# member-code endpoint would, at the moment the run needs them (a code is good for 30 to 60 s).
RUN_SECRET: dict[str, str] = {}


def api_json(url: str, path: str, token: str, *, timeout: float = 10) -> dict:
    request = urllib.request.Request(f"{url}{path}", headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


# record -> part -> (wallet openid, member id, coupon id or "-"), for the records of members' checkouts
MEMBER_CHECKOUTS: dict[str, dict[str, list[tuple[str, int, str]]]] = {}


def sign_in_members(url: str, record: str, prefix: str, wanted: int, part: str) -> list[tuple[int, str, str]]:
    """Members who signed in to the mini-program, each paying from a wallet of its own: (id, token, openid)."""
    progress(f"{record}: signing in {wanted} members for the {part}")

    def sign_in(i: int) -> tuple[int, str, str]:
        openid = f"o{prefix}{part[0]}{i:020d}"
        code = post_json(f"{url}/api/v1/sandbox/wechat/login-codes", {"openid": openid})["code"]
        login = post_json(f"{url}/api/v1/auth/miniprogram/login", {"code": code})
        return login["member"]["id"], login["accessToken"], openid

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(sign_in, range(wanted)))


def member_checkouts_lua(url: str, record: str, part: str, checkouts: list[tuple[str, int, str]]) -> str:
    """The wrk script of a record of members' till checkouts. Every part's payment and member codes are made now,
    the warm-up's again: those made before the run's preparation would be stale (a payment code is good for 60 s,
    a member code for 30 to 60 s)."""
    from backend.members.code import MemberCodes

    MEMBER_CHECKOUTS.setdefault(record, {})[part] = checkouts
    rows = [(prepared, row) for prepared, parts in MEMBER_CHECKOUTS[record].items() for row in parts]
    progress(f"{record}: a payment code for each of {len(rows)} checkouts")
    with ThreadPoolExecutor(16) as pool:
        auth_codes = list(
            pool.map(
                lambda row: post_json(f"{url}/api/v1/sandbox/wallets/{row[1][0]}/payment-codes", {})["authCode"], rows
            )
        )
    codes, now = MemberCodes(RUN_SECRET["secret_key"]), time.time()
    lines: dict[str, list[str]] = {}
    for (prepared, (_, member, coupon)), auth in zip(rows, auth_codes, strict=True):
        lines.setdefault(prepared, []).append(f"{auth} {codes.code_for(member, now=now)[0]} {coupon}")
    for prepared, text in lines.items():
        (OUT / f"{record}-{prepared}.txt").write_text("\n".join(text) + "\n")
    cashier = post_json(f"{url}/api/v1/auth/staff/login", {"username": "cashier1", "password": DEMO_PASSWORD})[
        "accessToken"
    ]
    return (
        MEMBER_CHECKOUT_LUA.replace("LINES_FILE", str(OUT / f"{record}-{part}.txt"))
        .replace("TOKEN", cashier)
        .replace("STORE_ID", str(store_id_of(url)))
        .replace("PART", part)
        .replace("RECORD", record)
    )


def prepare_coupon_checkouts(url: str, seconds: int, *, part: str = "run") -> str:
    """Till checkouts by members, each with the member code the till scanned and a coupon of theirs (10 yuan off,
    issued to them by a manual campaign), each paid by a new wallet of the member's."""
    hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    signed = sign_in_members(url, "checkout-with-coupon", "Coupon", 1_500 * seconds, part)
    headers = {"Authorization": f"Bearer {hq}"}
    now = time.time()
    window = {
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
    }
    template = post_json(
        f"{url}/api/v1/admin/coupon-templates",
        {
            "title": "满20减10",
            "kind": "fixed",
            "valueFen": 1000,
            "minSpendFen": 2000,
            "channels": ["till"],
            "validDays": 1,
        },
        headers,
    )
    # To the members who signed in to the mini-program (the checkout records' payers enrolled at the till are not)
    segment = post_json(
        f"{url}/api/v1/admin/segments",
        {"name": f"bench {part}", "rules": {"enrolledVia": ["miniprogram"]}},
        headers,
    )
    campaign = post_json(
        f"{url}/api/v1/admin/coupon-campaigns",
        {"templateId": template["id"], "trigger": "manual", "segmentId": segment["id"], **window},
        headers,
    )
    started = time.perf_counter()
    issue = post_json(
        f"{url}/api/v1/admin/coupon-campaigns/{campaign['id']}/issues",
        {"idempotencyKey": f"bench-{part}"},
        headers,
        timeout=300,
    )
    progress(
        f"checkout-with-coupon: {issue['issued']} coupons issued to the segment in "
        f"{time.perf_counter() - started:.1f} s ({issue['skipped']} members skipped)"
    )
    with ThreadPoolExecutor(16) as pool:
        coupons = list(pool.map(lambda s: api_json(url, "/api/v1/me/coupons", s[1])["items"][0]["id"], signed))
    checkouts = [(openid, member, str(coupon)) for (member, _, openid), coupon in zip(signed, coupons, strict=True)]
    return member_checkouts_lua(url, "checkout-with-coupon", part, checkouts)


BENCH_LADDER = [
    {"code": "normal", "name": "普通会员", "minGrowth": 0},
    {"code": "silver", "name": "银卡", "minGrowth": 1000, "pointsMultiplierPercent": 150, "discountPercent": 5},
]


def prepare_tiered_checkouts(url: str, seconds: int, *, part: str = "run") -> str:
    """Till checkouts by members who hold a tier with a discount and a multiplier (their growth from buying the
    paid plan reached it) and an active paid plan with a higher multiplier, each with their member code."""
    hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    headers = {"Authorization": f"Bearer {hq}"}
    request = urllib.request.Request(
        f"{url}/api/v1/admin/tiers",
        data=json.dumps({"tiers": BENCH_LADDER}).encode(),
        method="PUT",
        headers={"content-type": "application/json", **headers},
    )
    urllib.request.urlopen(request, timeout=60).read()
    plans = json.loads(urllib.request.urlopen(f"{url}/api/v1/membership-plans", timeout=10).read())["items"]
    plan = next((p for p in plans if p["code"] == "BENCH"), None) or post_json(
        f"{url}/api/v1/admin/membership-plans",
        {"code": "BENCH", "title": "心享会员 年卡", "priceFen": 1000, "days": 365, "pointsMultiplierPercent": 200},
        headers,
    )
    signed = sign_in_members(url, "checkout-tiered-member", "Tiered", 1_500 * seconds, part)
    store_id = store_id_of(url)
    progress(f"checkout-tiered-member: {len(signed)} members buy the paid plan in the sandbox")

    def buy(member: tuple[int, str, str]) -> None:
        bought = post_json(
            f"{url}/api/v1/me/memberships",
            {"planId": plan["id"], "idempotencyKey": f"bench-plan-{member[0]}", "storeId": store_id},
            {"Authorization": f"Bearer {member[1]}"},
        )
        post_json(f"{url}/api/v1/sandbox/payments/{bought['order']['outTradeNo']}/confirm", {})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(buy, signed))
    held = api_json(url, "/api/v1/me/membership", signed[0][1])
    assert held["tier"]["code"] == "silver" and held["paid"] is not None, held
    return member_checkouts_lua(url, "checkout-tiered-member", part, [(openid, m, "-") for m, _, openid in signed])


MEMBER_CHECKOUT_LUA = (
    THREAD_LINES_LUA
    + """
function init(args)
  read_lines()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer TOKEN"
end
function request()
  n = n + 1
  local auth, member, coupon = string.match(lines[n], "(%S+) (%S+) (%S+)")
  local with = coupon == "-" and "" or string.format('"couponId":%s,', coupon)
  local body = string.format(
    '{"storeId":STORE_ID,"amountFen":3000,"authCode":"%s","memberCode":"%s",%s' ..
    '"idempotencyKey":"RECORD-PART-%d-%d"}', auth, member, with, id, n)
  return wrk.format(nil, "/api/v1/cashier/orders", nil, body)
end
"""
)


def store_id_of(url: str, code: str = "S001") -> int:
    return next(s["id"] for s in json.loads(urllib.request.urlopen(f"{url}/api/v1/stores").read()) if s["code"] == code)


def prepare_browse(url: str, seconds: int) -> str:
    """The demo range's first page at S001, as every shopper opening the mall asks for it (cached)."""
    path = f"/api/v1/stores/{store_id_of(url)}/products"
    page = json.loads(urllib.request.urlopen(url + path).read())
    if not page["items"]:
        raise SystemExit("catalogue-browse: the demo range is missing (seed-demo)")
    return f'wrk.method = "GET"\nwrk.path = "{path}"\nfunction request() return wrk.format(nil, wrk.path) end\n'


MALL_SHOPPERS = 200


def prepare_mall_orders(url: str, seconds: int, *, part: str = "run") -> str:
    """Two-line pickup orders at S001 by signed-in shoppers, each with a key of its own, from stock that lasts."""
    hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    store_id = store_id_of(url)
    page = json.loads(urllib.request.urlopen(f"{url}/api/v1/stores/{store_id}/products").read())
    skus = [product["skus"][0]["id"] for product in page["items"][:2]]
    body = json.dumps({"items": [{"skuId": sku, "onHand": 10_000_000} for sku in skus]}).encode()
    request = urllib.request.Request(
        f"{url}/api/v1/admin/stores/{store_id}/inventory",
        data=body,
        method="PUT",
        headers={"content-type": "application/json", "authorization": f"Bearer {hq}"},
    )
    urllib.request.urlopen(request, timeout=30).read()

    def sign_in(i: int) -> str:
        code = post_json(f"{url}/api/v1/sandbox/wechat/login-codes", {"openid": f"oMallBench{i:018d}"})["code"]
        return post_json(f"{url}/api/v1/auth/miniprogram/login", {"code": code})["accessToken"]

    if part == "warm-up":
        progress(f"mall-order-place: signing in {MALL_SHOPPERS} shoppers")
    with ThreadPoolExecutor(16) as pool:
        tokens = list(pool.map(sign_in, range(MALL_SHOPPERS)))
    tokens_file = OUT / "mall-tokens.txt"
    tokens_file.write_text("\n".join(tokens) + "\n")
    return (
        MALL_ORDER_LUA.replace("TOKENS_FILE", str(tokens_file))
        .replace("STORE_ID", str(store_id))
        .replace("SKU_A", str(skus[0]))
        .replace("SKU_B", str(skus[1]))
        .replace("PART", part)
    )


MALL_ORDER_LUA = (
    THREAD_LINES_LUA.replace("LINES_FILE", "TOKENS_FILE")
    + """
function init(args)
  read_lines()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  n = n + 1
  local body = string.format(
    '{"storeId":STORE_ID,"lines":[{"skuId":SKU_A,"quantity":1},{"skuId":SKU_B,"quantity":2}],' ..
    '"fulfilment":"pickup","idempotencyKey":"bench-PART-%d-%d"}', id, n)
  local headers = {["Authorization"] = "Bearer " .. lines[(n % #lines) + 1]}
  return wrk.format(nil, "/api/v1/me/mall-orders", headers, body)
end
"""
)

UPSERT_SKUS, UPSERT_RUNS = 5_000, 5


def inventory_upsert(url: str) -> tuple[float, float, float]:
    """A store's whole range of 5,000 SKUs set in one request, timed end to end (UPSERT_RUNS runs, each every
    row written again): upserts a second, the median and the slowest in ms."""
    hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    auth = {"Authorization": f"Bearer {hq}"}
    progress(f"inventory-upsert-5000: HQ creates {UPSERT_SKUS} SKUs (products of 50)")

    def product(i: int) -> list[int]:
        skus = [{"code": f"BENCH-{i:03d}-{j:02d}", "spec": f"{j + 1} 份", "priceFen": 100 + j} for j in range(50)]
        made = post_json(f"{url}/api/v1/admin/products", {"title": f"压测商品 {i}", "skus": skus}, auth)
        return [sku["id"] for sku in made["skus"]]

    with ThreadPoolExecutor(4) as pool:
        sku_ids = [sku for skus in pool.map(product, range(UPSERT_SKUS // 50)) for sku in skus]
    store_id = store_id_of(url, "S003")
    times = []
    for run in range(UPSERT_RUNS):
        items = [
            {"skuId": sku, "onHand": run * 10 + i % 100, "priceFen": None if i % 3 else 99}
            for i, sku in enumerate(sku_ids)
        ]
        request = urllib.request.Request(
            f"{url}/api/v1/admin/stores/{store_id}/inventory",
            data=json.dumps({"items": items}).encode(),
            method="PUT",
            headers={"content-type": "application/json", **auth},
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        times.append(time.perf_counter() - start)
        assert answer["items"] == UPSERT_SKUS, answer
    times.sort()
    median = times[len(times) // 2]
    return 1 / median, median * 1000, times[-1] * 1000


SEGMENT_MEMBERS, SEGMENT_RUNS = 1_200_000, 5
SEGMENT_TAG = "压测会员 seeded"  # the tag `python -m backend seed-members` puts on 95% of the members it adds


def segment_count(url: str, env: dict[str, str]) -> tuple[float, float, float]:
    """A segment of over a million members counted by the server (PostgreSQL): members seeded by set-based SQL,
    then HQ's segment of the seed tag and a paid order in the last 90 days read SEGMENT_RUNS times for its
    `count` (and a first page of one): reads a second, the median and the slowest in ms."""
    progress(f"segment-count-1m: seeding {SEGMENT_MEMBERS:,} members with tags and orders")
    seeded = subprocess.run(
        [PYTHON, "-m", "backend", "seed-members", "--count", str(SEGMENT_MEMBERS)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    progress(f"segment-count-1m: {seeded}")
    hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    auth = {"Authorization": f"Bearer {hq}"}
    request = urllib.request.Request(f"{url}/api/v1/admin/tags", headers=auth)
    with urllib.request.urlopen(request, timeout=30) as response:
        tag_id = next(t["id"] for t in json.loads(response.read())["items"] if t["name"] == SEGMENT_TAG)
    rules = {"tagIds": [tag_id], "lastPaidWithinDays": 90}
    segment = post_json(f"{url}/api/v1/admin/segments", {"name": "压测人群 90 天内消费", "rules": rules}, auth)
    times, count = [], 0
    for _ in range(SEGMENT_RUNS):
        request = urllib.request.Request(f"{url}/api/v1/admin/segments/{segment['id']}/members?limit=1", headers=auth)
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:
            count = json.loads(response.read())["count"]
        times.append(time.perf_counter() - start)
    assert count > 1_000_000, count
    times.sort()
    median = times[len(times) // 2]
    progress(f"segment-count-1m: {count:,} members counted in {median:.2f} s (median of {SEGMENT_RUNS})")
    return 1 / median, median * 1000, times[-1] * 1000


SHAPE_CAPTURES = 2  # checkouts captured: a parameter that differs between them is the checkout's own
_LOGGED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[(\d+)\] (\w+):  (.*)$")
_MOMENT = re.compile(r"'\d{4}-\d\d-\d\d \d\d:\d\d:[\d.]+[+-]\d\d(:\d\d)?'")
_PARAMETER = re.compile(r"\$(\d+) = (NULL|'(?:[^']|'')*')")


def _logged_statements(lines: list[str]) -> list[tuple[str, dict[int, str]]]:
    """(SQL, {n: literal}) of each statement PostgreSQL logged (log_statement = all), in order."""
    entries: list[list[str]] = []  # [kind, message] with continuation lines joined
    for line in lines:
        if match := _LOGGED.match(line):
            entries.append([match.group(2), match.group(3)])
        elif entries:
            entries[-1][1] += "\n" + line.removeprefix("\t")
    statements: list[tuple[str, dict[int, str]]] = []
    for kind, message in entries:
        if kind == "LOG" and message.startswith("statement: "):
            statements.append((message.removeprefix("statement: "), {}))
        elif kind == "LOG" and message.startswith("execute "):
            statements.append((message.split(": ", 1)[1], {}))
        elif kind == "DETAIL" and message.startswith("parameters: ") and statements:
            statements[-1][1].update((int(n), value) for n, value in _PARAMETER.findall(message))
    return [(sql, params) for sql, params in statements if not sql.startswith(("ALTER SYSTEM", "SELECT pg_reload"))]


def _shape_checkout(url: str, store_id: int, n: int) -> dict:
    """A checkout's body, by a new payer with a payment code of their own."""
    tag = secrets.token_hex(8)
    code = post_json(f"{url}/api/v1/sandbox/wallets/oShape{tag}{n:06d}/payment-codes", {})["authCode"]
    return {"storeId": store_id, "amountFen": 1234, "authCode": code, "idempotencyKey": f"bench-shape-{tag}-{n}"}


async def _capture_checkouts(url: str, dsn: str, log: Path) -> list[list[tuple[str, dict[int, str]]]]:
    """The statements of SHAPE_CAPTURES checkouts, as PostgreSQL logged them; each capture is one checkout alone
    (the token and store looked up first; a capture that a sweeper pass ran into is taken again)."""
    token = post_json(f"{url}/api/v1/auth/staff/login", {"username": "cashier1", "password": DEMO_PASSWORD})[
        "accessToken"
    ]
    store_id, auth = store_id_of(url), {"Authorization": f"Bearer {token}"}
    post_json(f"{url}/api/v1/cashier/orders", _shape_checkout(url, store_id, 0), auth)  # the caches hold the staff
    connection = await asyncpg.connect(dsn)
    captures = []
    try:
        for n in range(1, 20):
            body = _shape_checkout(url, store_id, n)
            offset = log.stat().st_size
            await connection.execute("ALTER SYSTEM SET log_statement = 'all'")
            await connection.execute("SELECT pg_reload_conf()")
            await asyncio.sleep(0.3)  # every backend has read the new setting
            answer = await asyncio.to_thread(post_json, f"{url}/api/v1/cashier/orders", body, auth)
            await connection.execute("ALTER SYSTEM RESET log_statement")
            await connection.execute("SELECT pg_reload_conf()")
            await asyncio.sleep(0.3)
            assert answer["status"] == "paid", answer
            with log.open(errors="replace") as file:
                file.seek(offset)
                statements = _logged_statements(file.read().splitlines())
            if captures and [sql for sql, _ in statements] != [sql for sql, _ in captures[0]]:
                continue  # something else ran meanwhile (the sweeper): take it again
            captures.append(statements)
            if len(captures) == SHAPE_CAPTURES:
                return captures
    finally:
        await connection.close()
    raise SystemExit("pgbench-checkout-shape: no two checkouts sent the same statements")


def _parameter_columns(sql: str) -> tuple[str | None, dict[int, str]]:
    """The table a statement writes or reads first, and the column each `$n` is given for (where it says)."""
    table = re.match(r'(?:INSERT INTO|UPDATE|SELECT .*? FROM) "(\w+)"', sql, re.S)
    columns: dict[int, str] = {}
    if insert := re.match(r'INSERT INTO "\w+" \(([^)]*)\) VALUES \(([^)]*)\)', sql):
        names = [name.strip().strip('"') for name in insert.group(1).split(",")]
        for name, value in zip(names, insert.group(2).split(","), strict=False):
            if placeholder := re.fullmatch(r"\s*\$(\d+)\s*", value):
                columns[int(placeholder.group(1))] = name
    for name, n in re.findall(r'"(\w+)" = \$(\d+)', sql):
        columns.setdefault(int(n), name)
    return (table.group(1) if table else None), columns


async def _producers(dsn: str, captures: list[list[tuple[str, dict[int, str]]]]) -> dict[tuple[int, int], int]:
    """(statement, parameter) -> the earlier INSERT ... RETURNING "id" whose row that parameter names, in every
    capture: the ids a checkout makes and then refers to (its order, trade, member, entry). The column's foreign
    key says which table's id it is."""
    inserts = {
        i: match.group(1)
        for i, (sql, _) in enumerate(captures[0])
        if (match := re.match(r'INSERT INTO "(\w+)" .* RETURNING "id"$', sql, re.S))
    }
    connection = await asyncpg.connect(dsn)
    try:
        references = {
            (row["source"], row["column"]): row["target"]
            for row in await connection.fetch(
                """SELECT c.conrelid::regclass::text AS source, a.attname AS column,
                          c.confrelid::regclass::text AS target
                   FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                   WHERE c.contype = 'f'"""
            )
        }
        found: dict[tuple[int, int], int] = {}
        for i, (sql, params) in enumerate(captures[0]):
            table, columns = _parameter_columns(sql)
            for n in params:
                values = [capture[i][1].get(n) for capture in captures]
                if len(set(values)) == 1 or not all(v and re.fullmatch(r"'\d{1,9}'", v) for v in values):
                    continue  # the same in every checkout, or no id
                column = columns.get(n)
                target = table if column == "id" else references.get((table, column))
                candidates = sorted((k for k in inserts if k < i and inserts[k] in (target, None)), reverse=True)
                if target is not None:
                    candidates = [k for k in candidates if inserts[k] == target] or candidates
                for producer in candidates:
                    counts = [
                        await connection.fetchval(
                            f'SELECT count(*) FROM "{inserts[producer]}" WHERE id = $1', int(v.strip("'"))
                        )
                        for v in values
                    ]
                    if all(counts):
                        found[(i, n)] = producer
                        break
        return found
    finally:
        await connection.close()


def _pgbench_script(captures: list[list[tuple[str, dict[int, str]]]], producers: dict[tuple[int, int], int]) -> str:
    r"""The captured checkout as a pgbench script: a parameter equal in every capture stays as sent, an id made by
    the checkout is the one this transaction made (`\gset`), any other parameter of the checkout's own (a trade
    number, an openid, an idempotency key) is made unique per transaction."""
    used = set(producers.values())
    lines = ["\\set unique random(1, 999999999999999)"]
    for i, (sql, params) in enumerate(captures[0]):

        def literal(match: re.Match, i: int = i, params: dict[int, str] = params) -> str:
            n = int(match.group(1))
            values = {capture[i][1].get(n) for capture in captures}
            if (i, n) in producers:
                return f":s{producers[(i, n)]}_id"
            if _MOMENT.fullmatch(params[n]):  # pgbench would read the colons of a time as variables
                moment = datetime.fromisoformat(params[n].strip("'"))
                return f"to_timestamp({moment.timestamp():.6f})"
            if len(values) > 1 and params[n].startswith("'"):
                prefix = params[n].strip("'")[:12].replace(":", "")
                return f"('{prefix}' || CAST(:unique AS text))"
            if ":" in params[n]:
                raise SystemExit(f"pgbench-checkout-shape: a colon in {params[n]} would read as a variable")
            return params[n]

        statement = re.sub(r"\$(\d+)\b", literal, sql).replace("\n", " ").rstrip(";")
        lines.append(statement + ";")
        if i in used:
            lines.append(f"\\gset s{i}_")
    return "\n".join(lines) + "\n"


def pgbench_checkout_shape(url: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """pgbench on the same PostgreSQL, with the same client count, running the statements one checkout sends,
    captured from the server's log (log_statement = all): transactions a second, p50 and p99 in ms."""
    dsn, log, pgbench = os.environ["BENCH_DATABASE_URL"], Path(os.environ["BENCH_PG_LOG"]), os.environ["BENCH_PGBENCH"]
    captures = asyncio.run(_capture_checkouts(url, dsn, log))
    script = _pgbench_script(captures, asyncio.run(_producers(dsn, captures)))
    (OUT / "checkout-shape.sql").write_text(script)
    statements = len(captures[0])
    progress(f"pgbench-checkout-shape: {statements} statements captured ({OUT / 'checkout-shape.sql'})")
    run_dir = Path(tempfile.mkdtemp(prefix="pgbench-", dir=OUT))
    command = [
        pgbench,
        "-n",
        "-M",
        "prepared",
        "-c",
        str(args.connections),
        "-j",
        "2",
        "-f",
        str(OUT / "checkout-shape.sql"),
    ]
    command += ["-l", "--log-prefix", str(run_dir / "tx"), dsn]
    subprocess.run([*command[:1], "-T", str(WARM_UP_SECONDS), *command[1:]], check=True, capture_output=True)
    for old in run_dir.glob("tx*"):
        old.unlink()
    out = subprocess.run(
        [*command[:1], "-T", str(args.duration), *command[1:]], check=True, capture_output=True, text=True
    )
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    latencies = sorted(int(line.split()[2]) for path in run_dir.glob("tx*") for line in path.open())
    shutil.rmtree(run_dir)
    return tps, latencies[len(latencies) // 2] / 1000, latencies[int(len(latencies) * 0.99)] / 1000


REPORT_STORES, REPORT_ORDERS, REPORT_DAYS, REPORT_MEMBERS, REPORT_RUNS = 500, 5_000_000, 90, 500_000, 5


def report_stores(url: str, env: dict[str, str]) -> tuple[float, float, float]:
    """The store report over 90 days of 500 stores with 5,000,000 orders (PostgreSQL): the chain seeded by set-based
    SQL, the ended days written as the sweeper writes them, then HQ's report of the 90 days read REPORT_RUNS times:
    reports a second, the median and the slowest in ms. Before the days are written, one read of the last 7 days
    shows what working a day out from the rows costs."""

    def cli(*command: str) -> str:
        done = subprocess.run([PYTHON, "-m", "backend", *command], env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"report-stores-90d: {command[0]} failed:\n{done.stderr[-2000:]}")
        return done.stdout.strip()

    progress(f"report-stores-90d: seeding {REPORT_ORDERS:,} orders at {REPORT_STORES} stores over {REPORT_DAYS} days")
    progress(
        "report-stores-90d: "
        + cli(
            "seed-orders",
            "--stores",
            str(REPORT_STORES),
            "--orders",
            str(REPORT_ORDERS),
            "--days",
            str(REPORT_DAYS),
            "--members",
            str(REPORT_MEMBERS),
        )
    )
    hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]

    def read(days: int) -> tuple[float, dict]:
        today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
        first = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600 - (days - 1) * 86400))
        request = urllib.request.Request(
            f"{url}/api/v1/admin/reports/stores?from={first}&to={today}", headers={"authorization": f"Bearer {hq}"}
        )
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = response.read()  # the whole answer received; reading its JSON here is the client's time
        return time.perf_counter() - start, json.loads(answer)

    cold, body = read(7)
    progress(f"report-stores-90d: 7 days worked out from the rows ({body['writtenDays']} written): {cold:.2f} s")
    progress("report-stores-90d: " + cli("roll-up-reports"))
    times = []
    for _ in range(REPORT_RUNS):
        took, body = read(REPORT_DAYS)
        times.append(took)
    assert body["writtenDays"] >= REPORT_DAYS - 1 and body["totals"]["orders"] >= REPORT_ORDERS * 0.95, body["totals"]
    times.sort()
    median = times[len(times) // 2]
    progress(
        f"report-stores-90d: {len(body['rows']):,} store-days, {body['totals']['orders']:,} orders, "
        f"in {median:.2f} s (median of {REPORT_RUNS})"
    )
    return 1 / median, median * 1000, times[-1] * 1000


FLASH_SEATS, FLASH_ATTEMPTS, FLASH_CONNECTIONS = 100, 2_000, 200
WARM_UP_SECONDS = 2


def shopper_tokens(url: str, count: int) -> list[str]:
    """Shoppers signed in through the sandbox, as the mini-program does, one WeChat user each."""

    def sign_in(i: int) -> str:
        code = post_json(f"{url}/api/v1/sandbox/wechat/login-codes", {"openid": f"oFlash{i:022d}"})["code"]
        return post_json(f"{url}/api/v1/auth/miniprogram/login", {"code": code})["accessToken"]

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(sign_in, range(count)))


def flash_campaign(url: str) -> tuple[int, int]:
    """A campaign of 100 units, one per member, groups of 2; answers (campaign id, pickup store id)."""
    token = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    store_id = next(
        s["id"] for s in json.loads(urllib.request.urlopen(f"{url}/api/v1/stores").read()) if s["code"] == "S001"
    )
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    campaign = post_json(
        f"{url}/api/v1/admin/groupbuy/campaigns",
        {
            "title": "flash",
            "productName": "榴莲",
            "priceFen": 9900,
            "originalPriceFen": 15800,
            "groupSize": 2,
            "groupTtlMinutes": 1440,
            "stock": FLASH_SEATS,
            "perMemberLimit": 1,
            "startsAt": iso(now - 60),
            "endsAt": iso(now + 86400),
            "pickupStoreIds": [store_id],
            "pickupDate": iso(now + 2 * 86400)[:10],
        },
        {"Authorization": f"Bearer {token}"},
    )
    return campaign["id"], store_id


class KeptAliveConnection:
    """One HTTP/1.1 keep-alive connection that sends a request and reads its answer, with little Python in
    between: at 2,000 requests an httpx client spent a core of its own and the server sat idle."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """The answer's status; raises ConnectionError (or IncompleteReadError) when the connection drops."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionResetError("the server closed the connection")
            status = int(status_line.split()[1])
            length, closing = None, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value == "close":
                    closing = True
                elif name == "transfer-encoding":
                    raise SystemExit(f"groupbuy-flash-join: a {value} answer; this client reads Content-Length only")
            await self.reader.readexactly(length or 0)
        except BaseException:
            self.close()
            raise
        if closing:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def flash_join(url: str, campaign_id: int, store_id: int, tokens: list[str]) -> tuple[float, float, float]:
    """2,000 seat requests from 200 connections at once: exactly 100 may succeed."""
    address = urlsplit(url)
    path = f"/api/v1/groupbuy/campaigns/{campaign_id}/groups"
    body = json.dumps({"pickupStoreId": store_id}).encode()
    statuses: list[int] = []
    latencies: list[float] = []
    queue = list(tokens)
    retried = 0

    async def connection() -> None:
        nonlocal retried
        client = KeptAliveConnection(address.hostname, address.port)
        try:
            while queue:
                token = queue.pop()
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                started = time.perf_counter()
                for attempt in range(2):  # a phone retries a request its connection dropped
                    try:
                        status = await asyncio.wait_for(client.post(path, body, headers), timeout=30)
                        break
                    except (ConnectionError, asyncio.IncompleteReadError):
                        if attempt:
                            raise
                        retried += 1
                latencies.append(time.perf_counter() - started)
                statuses.append(status)
        finally:
            client.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(FLASH_CONNECTIONS)))
    elapsed = time.perf_counter() - began
    taken = statuses.count(201)
    refused = statuses.count(409)
    left = json.loads(urllib.request.urlopen(f"{url}/api/v1/groupbuy/campaigns/{campaign_id}").read())["stockLeft"]
    progress(
        f"groupbuy-flash-join: {taken} seats taken, {refused} refused, {left} left, "
        f"other answers: {sorted(set(statuses) - {201, 409})}, {retried} dropped connections retried"
    )
    if taken != FLASH_SEATS or refused != len(tokens) - FLASH_SEATS or left != 0:
        raise SystemExit("groupbuy-flash-join: the flash sale did not end with exactly 100 seats")
    latencies.sort()
    return len(statuses) / elapsed, latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


SOLD_OUT_LUA = (
    THREAD_LINES_LUA.replace("LINES_FILE", "TOKENS_FILE")
    + """
function init(args)
  read_lines()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"pickupStoreId":STORE_ID}'
end
function request()
  n = n + 1
  wrk.headers["Authorization"] = "Bearer " .. lines[(n - 1) % #lines + 1]
  return wrk.format(nil, "/api/v1/groupbuy/campaigns/CAMPAIGN_ID/groups")
end
"""
)

# groupbuy-seat-pay: WeChat Pay's payment notifications for group-buy seats, one per seat, as it would post them.
APP_ID = "wx-sandbox-app"  # WECHAT_APP_ID of the bench's server: the appid its notifications must name
SEAT_PAY_PER_SHOPPER = 200  # seats one shopper takes in a batch, leading or joining (the campaign allows 1,000)
SEAT_PAY_FIRST_WARM_UP = 4_000  # seats for the first warm-up; doubled until a warm-up does not run out
SEAT_PAY_MARGIN = 1.5  # the run gets this many times the seats the warm-up's rate would use
SEAT_PAY_SAMPLE = 60  # paid seats read back through their shoppers after the run
SEAT_PAY_HEADERS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")

# A line is the four Wechatpay-* headers and the raw body, tab-separated: base64, hex and digits have no tab,
# and json.dumps escapes every control character inside strings, so neither a tab nor a newline occurs in a body.
SEAT_PAY_LUA = (
    THREAD_LINES_LUA
    + """
function init(args)
  read_lines()
  total, others = #lines, 0
  wrk.method = "POST"
  headers = {["Content-Type"] = "application/json"}
end
function request()
  n = n + 1
  local line = lines[n]
  if line == nil then  -- out of seats: a 404 of its own, and done() says so
    return wrk.format("GET", "/api/v1/bench/out-of-seats", {})
  end
  local timestamp, nonce, signature, serial, body = line:match("^([^\\t]+)\\t([^\\t]+)\\t([^\\t]+)\\t([^\\t]+)\\t(.+)$")
  headers["Wechatpay-Timestamp"] = timestamp
  headers["Wechatpay-Nonce"] = nonce
  headers["Wechatpay-Signature"] = signature
  headers["Wechatpay-Serial"] = serial
  return wrk.format(nil, nil, headers, body)
end
function response(status, headers, body)
  if status ~= 204 then others = others + 1 end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("seat-pay thread %d: %d requests of %d lines, %d answers not 204\\n",
      thread:get("id"), thread:get("n"), thread:get("total"), thread:get("others")))
  end
end
"""
)


class OutOfSeats(Exception):
    """A wrk thread sent every notification it had before the run ended."""


@dataclass(frozen=True)
class UnpaidSeat:
    out_trade_no: str
    amount_fen: int
    openid: str
    token: str


_connections = threading.local()


def api(url: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    """One JSON request on this thread's keep-alive connection: tens of thousands of seats over fresh connections
    would spend the server's core on TCP handshakes. Fails loudly with the server's answer."""
    address = urlsplit(url)
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    payload = None if body is None else json.dumps(body).encode()
    for attempt in range(2):
        connection = getattr(_connections, "connection", None)
        reused = connection is not None
        if connection is None:
            connection = _connections.connection = http.client.HTTPConnection(address.hostname, address.port, 30)
        try:
            connection.request(method, path, payload, headers)
            response = connection.getresponse()
            answer = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            connection.close()
            _connections.connection = None
            if attempt or not reused:  # only a kept-alive connection the server closed meanwhile is tried again
                raise
            continue
        if response.status >= 300:
            raise SystemExit(f"groupbuy-seat-pay: {method} {path} answered {response.status}: {answer[:500]!r}")
        return json.loads(answer) if answer else {}
    raise AssertionError("unreachable")


def seat_pay_campaign(url: str) -> tuple[int, int]:
    """A campaign that never runs out: groups of 2, so every second payment fills a group and makes it succeed."""
    hq = api(url, "POST", "/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    store_id = next(
        s["id"] for s in json.loads(urllib.request.urlopen(f"{url}/api/v1/stores").read()) if s["code"] == "S001"
    )
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    campaign = api(
        url,
        "POST",
        "/api/v1/admin/groupbuy/campaigns",
        {
            "title": "seat-pay",
            "productName": "榴莲",
            "priceFen": 9900,
            "originalPriceFen": 15800,
            "groupSize": 2,
            "groupTtlMinutes": 1440,
            "paymentWindowMinutes": 1440,  # no seat expires while the others are prepared
            "stock": 10_000_000,
            "perMemberLimit": 1000,
            "startsAt": iso(now - 60),
            "endsAt": iso(now + 86400),
            "pickupStoreIds": [store_id],
            "pickupDate": iso(now + 2 * 86400)[:10],
        },
        token=hq,
    )
    return campaign["id"], store_id


def take_seats(url: str, campaign_id: int, store_id: int, count: int, batch: int) -> list[UnpaidSeat]:
    """`count` unpaid seats (rounded up to whole groups), taken through the API by shoppers of this batch: each
    shopper leads or joins up to SEAT_PAY_PER_SHOPPER groups; a group's leader and joiner are never the same."""
    groups = -(-count // 2)
    shoppers_wanted = max(32, -(-2 * groups // SEAT_PAY_PER_SHOPPER))
    shoppers_wanted += shoppers_wanted % 2  # even: a leader is an even index, its joiner the odd one after it
    began = time.perf_counter()

    def sign_in(i: int) -> tuple[str, str]:
        openid = f"oSeat{batch:02d}{i:021d}"
        code = api(url, "POST", "/api/v1/sandbox/wechat/login-codes", {"openid": openid})["code"]
        return openid, api(url, "POST", "/api/v1/auth/miniprogram/login", {"code": code})["accessToken"]

    with ThreadPoolExecutor(16) as pool:
        shoppers = list(pool.map(sign_in, range(shoppers_wanted)))
    done, lock, step = [0], threading.Lock(), max(1000, groups // 10)

    def group(g: int) -> list[UnpaidSeat]:
        leader, joiner = shoppers[(2 * g) % len(shoppers)], shoppers[(2 * g + 1) % len(shoppers)]
        body = {"pickupStoreId": store_id}
        opened = api(url, "POST", f"/api/v1/groupbuy/campaigns/{campaign_id}/groups", body, token=leader[1])
        joined = api(url, "POST", f"/api/v1/groupbuy/groups/{opened['group']['id']}/orders", body, token=joiner[1])
        with lock:
            done[0] += 1
            if done[0] % step == 0:
                elapsed = time.perf_counter() - began
                progress(f"groupbuy-seat-pay: {2 * done[0]} of {2 * groups} seats ({2 * done[0] / elapsed:.0f}/s)")
        return [
            UnpaidSeat(answer["order"]["outTradeNo"], answer["order"]["amountFen"], openid, token)
            for answer, (openid, token) in ((opened, leader), (joined, joiner))
        ]

    with ThreadPoolExecutor(16) as pool:
        seats = [seat for pair in pool.map(group, range(groups)) for seat in pair]
    elapsed = time.perf_counter() - began
    progress(
        f"groupbuy-seat-pay: {len(seats)} unpaid seats taken by {len(shoppers)} shoppers in {elapsed:.1f} s"
        f" ({len(seats) / elapsed:.0f}/s)"
    )
    return seats


def seal_payments(seats: list[UnpaidSeat], batch: int, keys: "SandboxKeys", path: Path) -> Path:
    """The TRANSACTION.SUCCESS notification WeChat Pay would post for each seat, signed with the sandbox's platform
    key and encrypted under its APIv3 key, one line each. Stamped now: the server takes them within 5 minutes of
    their timestamp."""
    from backend.sandbox.notify import SandboxNotifier, transaction_payload

    notifier = SandboxNotifier(keys, url="")  # seals only: wrk posts them
    began = time.perf_counter()
    with path.open("w") as out:
        for i, seat in enumerate(seats):
            trade = {
                "out_trade_no": seat.out_trade_no,
                "transaction_id": f"42{batch:02d}{i:024d}",  # unique per seat: 28 digits, as WeChat Pay's
                "trade_type": "JSAPI",
                "openid": seat.openid,
                "amount_fen": seat.amount_fen,
            }
            payload = transaction_payload(trade, mchid=keys.mchid, appid=APP_ID)
            headers, body = notifier.seal(
                "TRANSACTION.SUCCESS", "transaction", json.dumps(payload, ensure_ascii=False).encode()
            )
            fields = [headers[name] for name in SEAT_PAY_HEADERS] + [body.decode()]
            if any(not field or "\t" in field or "\n" in field or "\r" in field for field in fields):
                raise SystemExit(f"groupbuy-seat-pay: a notification does not fit on one line: {fields!r}")
            out.write("\t".join(fields) + "\n")
    progress(f"groupbuy-seat-pay: {len(seats)} notifications sealed in {time.perf_counter() - began:.1f} s")
    return path


def seat_pay_run(
    url: str,
    seats: list[UnpaidSeat],
    batch: int,
    keys: "SandboxKeys",
    *,
    seconds: int,
    connections: int,
    threads: int,
    cpu: str | None,
) -> tuple[tuple[float, float, float], list[int]]:
    """One wrk run over these seats' notifications, sealed right before it; answers (rps, p50, p99) and the
    requests each thread sent. Raises OutOfSeats when a thread ran out, and fails loudly on any answer but 204
    and on any socket error (a notification without an answer)."""
    lines = seal_payments(seats, batch, keys, OUT / f"seat-pay-{batch}.txt")
    progress(f"groupbuy-seat-pay: {seconds} s at {connections} connections, one notification per seat")
    scenario = Scenario("groupbuy-seat-pay", "POST", "/api/v1/payments/wechat/notify")
    out = wrk_output(
        url,
        scenario,
        seconds=seconds,
        connections=connections,
        threads=threads,
        cpu=cpu,
        lua=SEAT_PAY_LUA.replace("LINES_FILE", str(lines)),
    )
    lines.unlink()
    counts = {
        int(thread): (int(sent), int(total), int(others))
        for thread, sent, total, others in re.findall(
            r"^seat-pay thread (\d+): (\d+) requests of (\d+) lines, (\d+) answers not 204$", out, re.M
        )
    }
    if sorted(counts) != list(range(1, threads + 1)):
        raise SystemExit(f"groupbuy-seat-pay: wrk's script did not report every thread:\n{out}")
    if any(sent > total for sent, total, _ in counts.values()):
        raise OutOfSeats(f"groupbuy-seat-pay: ran out of seats ({len(seats)} prepared):\n{out}")
    if any(others for _, _, others in counts.values()) or "Non-2xx or 3xx responses" in out:
        raise SystemExit(f"groupbuy-seat-pay: some notifications were not answered 204:\n{out}")
    if "Socket errors" in out:
        raise SystemExit(f"groupbuy-seat-pay: some notifications got no answer:\n{out}")
    return wrk_figures(out), [counts[t][0] for t in range(1, threads + 1)]


def check_seats_paid(url: str, seats: list[UnpaidSeat], sent: list[int], in_flight: int) -> tuple[int, int]:
    """Read a sample of the notified seats back through their shoppers: each must be paid (or succeeded, when its
    group's other seat was paid too). Only seats at least `in_flight` requests before their thread's last are
    sampled: those were answered before wrk stopped. A few seats never sent must still wait for their payment.
    Answers how many of each were checked."""
    threads = len(sent)
    answered = [i for i in range(len(seats)) if i // threads < sent[i % threads] - in_flight]
    never_sent = [i for i in range(len(seats)) if i // threads >= sent[i % threads]]
    pick = random.Random(len(seats))
    paid = pick.sample(answered, min(SEAT_PAY_SAMPLE, len(answered)))
    unpaid = pick.sample(never_sent, min(SEAT_PAY_SAMPLE // 6, len(never_sent)))
    expected = {seats[i].out_trade_no: ("paid", "succeeded") for i in paid}
    expected.update({seats[i].out_trade_no: ("pending_payment",) for i in unpaid})
    wanted: dict[str, set[str]] = {}
    for i in paid + unpaid:
        wanted.setdefault(seats[i].token, set()).add(seats[i].out_trade_no)
    for token, numbers in wanted.items():
        statuses, cursor = {}, None
        while numbers - statuses.keys():
            page = api(
                url,
                "GET",
                "/api/v1/me/groupbuy/orders?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                token=token,
            )
            statuses.update((item["outTradeNo"], item["status"]) for item in page["items"])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        for number in numbers:
            if (status := statuses.get(number)) not in expected[number]:
                raise SystemExit(f"groupbuy-seat-pay: seat {number} reads as {status!r}, not {expected[number]}")
    return len(paid), len(unpaid)


def seat_pay(
    url: str, args: argparse.Namespace, *, threads: int, cpu: str | None, var_dir: Path, secret_key: str
) -> tuple[float, float, float]:
    """Group-buy seats paid by WeChat Pay's notification: a warm-up measures the rate, the run gets seats enough
    for that rate with a margin, each seat's notification sealed just before its run and sent once.

    The notifications are sealed with the server's own sandbox keys: the bench imports the backend's sandbox
    modules and reads the keys from the VAR_DIR and SECRET_KEY it gave the server."""
    from backend.sandbox.keys import load_sandbox_keys

    keys = load_sandbox_keys(var_dir, secret_key)
    run = lambda seats, batch, seconds: seat_pay_run(  # noqa: E731
        url, seats, batch, keys, seconds=seconds, connections=args.connections, threads=threads, cpu=cpu
    )
    began, preparing = time.perf_counter(), 0.0
    campaign_id, store_id = seat_pay_campaign(url)
    batch, wanted = 0, SEAT_PAY_FIRST_WARM_UP
    while True:  # a warm-up that ran out measured nothing: again with twice the seats, all of its own
        batch += 1
        progress(f"groupbuy-seat-pay: preparing {wanted} seats for a {WARM_UP_SECONDS} s warm-up")
        started = time.perf_counter()
        seats = take_seats(url, campaign_id, store_id, wanted, batch)
        preparing += time.perf_counter() - started
        try:
            (rate, _, _), _ = run(seats, batch, WARM_UP_SECONDS)
            break
        except OutOfSeats as error:
            if batch >= 5:
                raise SystemExit(str(error)) from None
            progress(f"groupbuy-seat-pay: the warm-up ran out of its {len(seats)} seats")
            wanted *= 2
    wanted = math.ceil(rate * (args.duration + 2) * SEAT_PAY_MARGIN)
    progress(
        f"groupbuy-seat-pay: the warm-up acknowledged {rate:.0f} notifications/s; preparing {wanted} seats"
        f" for {args.duration} s"
    )
    started = time.perf_counter()
    seats = take_seats(url, campaign_id, store_id, wanted, batch + 1)
    preparing += time.perf_counter() - started
    try:
        figures, sent = run(seats, batch + 1, args.duration)
    except OutOfSeats as error:
        raise SystemExit(f"{error}\nthe run went faster than its warm-up by more than the margin") from None
    paid, unpaid = check_seats_paid(url, seats, sent, in_flight=-(-args.connections // threads))
    progress(
        f"groupbuy-seat-pay: {sum(sent)} of {len(seats)} seats notified, every answer a 204; {paid} sampled"
        f" notified seats read as paid, {unpaid} never notified as pending_payment"
        f" ({time.perf_counter() - began:.0f} s in all, {preparing:.0f} s of it taking seats)"
    )
    return figures


POSTER_MEMBERS, POSTER_CAMPAIGNS = 100, 20  # 2,000 distinct posters per format: every cold request draws one

POSTER_LUA = (
    THREAD_LINES_LUA.replace("LINES_FILE", "PAIRS_FILE")
    + """
function init(args)
  read_lines()
end
function request()
  n = n + 1
  local token, campaign = lines[(n - 1) % #lines + 1]:match("(%S+) (%S+)")
  wrk.headers["Authorization"] = "Bearer " .. token
  return wrk.format("GET", "/api/v1/me/posters?format=FORMAT&campaignId=" .. campaign)
end
"""
)


def poster_pairs(url: str) -> Path:
    """Members and referral campaigns whose posters nobody has drawn yet: a file of "token campaignId" lines."""
    pairs_file = OUT / "poster-pairs.txt"
    if pairs_file.exists():
        return pairs_file
    hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))  # noqa: E731
    campaigns = [
        post_json(
            f"{url}/api/v1/admin/referral-campaigns",
            {
                "title": f"拉新有礼 第{i + 1}期 邀请好友一起拿积分",
                "startsAt": iso(now - 60),
                "endsAt": iso(now + 30 * 86400),
                "referrerPoints": 200,
                "refereePoints": 100,
                "holdingPeriodDays": 7,
                "dailyCapPerReferrer": 20,
            },
            {"Authorization": f"Bearer {hq}"},
        )["id"]
        for i in range(POSTER_CAMPAIGNS)
    ]

    def sign_in(i: int) -> str:
        code = post_json(f"{url}/api/v1/sandbox/wechat/login-codes", {"openid": f"oPoster{i:021d}"})["code"]
        return post_json(f"{url}/api/v1/auth/miniprogram/login", {"code": code})["accessToken"]

    progress(f"posters: signing in {POSTER_MEMBERS} sharers for {POSTER_CAMPAIGNS} campaigns")
    with ThreadPoolExecutor(16) as pool:
        tokens = list(pool.map(sign_in, range(POSTER_MEMBERS)))
    pairs_file.write_text("".join(f"{token} {campaign}\n" for campaign in campaigns for token in tokens))
    return pairs_file


def prepare_cold(image_format: str) -> Callable[[str, int], str]:
    def prepare(url: str, seconds: int) -> str:
        return POSTER_LUA.replace("PAIRS_FILE", str(poster_pairs(url))).replace("FORMAT", image_format)

    return prepare


DEMO_PHONE = "13800138000"  # the demo member's (seed-demo)


def prepare_member_search(url: str, seconds: int) -> str:
    """HQ finding the demo member by the full phone number, as the console's search asks for it."""
    hq = post_json(f"{url}/api/v1/auth/staff/login", {"username": "hq", "password": DEMO_PASSWORD})["accessToken"]
    found = api_json(url, f"/api/v1/admin/members?q={DEMO_PHONE}", hq)
    if [item["phoneMasked"] for item in found["items"]] != ["138****8000"]:
        raise SystemExit(f"admin-member-search: the demo member is missing (seed-demo): {found}")
    return (
        f'wrk.method = "GET"\nwrk.headers["Authorization"] = "Bearer {hq}"\n'
        f'wrk.path = "/api/v1/admin/members?q={DEMO_PHONE}"\n'
        "function request() return wrk.format(nil, wrk.path) end\n"
    )


def prepare_cached(url: str, seconds: int) -> str:
    """One member's poster, drawn once before the run: every request is answered from the cache."""
    first = poster_pairs(url).read_text().splitlines()[0]
    token, campaign = first.split()
    request = urllib.request.Request(
        f"{url}/api/v1/me/posters?format=jpeg&campaignId={campaign}", headers={"Authorization": f"Bearer {token}"}
    )
    urllib.request.urlopen(request, timeout=30).read()
    return (
        f'wrk.method = "GET"\nwrk.headers["Authorization"] = "Bearer {token}"\n'
        f'wrk.path = "/api/v1/me/posters?format=jpeg&campaignId={campaign}"\n'
        "function request() return wrk.format(nil, wrk.path) end\n"
    )


def bare_pillow_jpeg(seconds: float) -> tuple[float, float, float]:
    """The referral template drawn with nothing but Pillow and qrcode, in one thread: fonts loaded once, each
    layer drawn directly (no wrapping, no font fallback, no cache), then encoded as the server's JPEG is."""
    import io

    import qrcode
    from PIL import Image, ImageDraw, ImageFont

    spec = json.loads((ROOT / "assets" / "posters" / "referral.json").read_text())
    font_path = str(ROOT / "assets" / "fonts" / "DroidSansFallbackFull.ttf")
    fields = {
        "title": "拉新有礼 第1期 邀请好友一起拿积分",
        "referrerPoints": "200",
        "refereePoints": "100",
        "endsAt": "12月23日",
    }
    top, bottom = spec["background"]["gradient"]
    fonts = {layer["size"]: ImageFont.truetype(font_path, layer["size"]) for layer in spec["layers"] if "size" in layer}
    times = []
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        canvas = Image.composite(
            Image.new("RGB", (750, 1334), bottom),
            Image.new("RGB", (750, 1334), top),
            Image.linear_gradient("L").resize((750, 1334)),
        )
        draw = ImageDraw.Draw(canvas)
        for layer in spec["layers"]:
            x, y, w, h = layer["box"]
            if layer["type"] == "rect":
                draw.rounded_rectangle([x, y, x + w - 1, y + h - 1], radius=layer.get("radius", 0), fill=layer["color"])
            elif layer["type"] in ("text", "nickname"):
                text = "会员" if layer["type"] == "nickname" else layer["text"].format(**fields)
                draw.text((x, y), text, font=fonts[layer["size"]], fill=layer["color"])
            elif layer["type"] == "avatar":
                draw.ellipse([x, y, x + w - 1, y + h - 1], fill="#FFB066")
            elif layer["type"] == "qr":
                code = qrcode.make(f"http://127.0.0.1:8000/api/v1/share/bench{n:019d}", box_size=8, border=4)
                canvas.paste(code.get_image().convert("RGB").resize((w, h), Image.Resampling.NEAREST), (x, y))
        out = io.BytesIO()
        canvas.save(out, "JPEG", quality=90, subsampling=0)
        times.append(time.perf_counter() - start)
        n += 1
    times.sort()
    return n / sum(times), times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000


SCENARIOS = [
    Scenario("ceiling", "GET", "/healthz", describes="plain GET, no database: the framework's ceiling"),
    Scenario(
        "write-one-insert",
        "POST",
        "/api/v1/sandbox/wechat/login-codes",
        "{}",
        describes="one INSERT, a transaction of its own (a sandbox login code)",
    ),
    Scenario(
        "checkout-micropay",
        "POST",
        "/api/v1/cashier/orders",
        prepare=prepare_checkouts,
        warm_up=lambda url, seconds: prepare_checkouts(url, seconds, part="warm-up"),
        describes="a till checkout with the sandbox's success wallet, the payer enrolled and earning points",
    ),
    Scenario(
        "checkout-with-coupon",
        "POST",
        "/api/v1/cashier/orders",
        prepare=prepare_coupon_checkouts,
        warm_up=lambda url, seconds: prepare_coupon_checkouts(url, seconds, part="warm-up"),
        describes="a member's till checkout with their member code and a coupon: checked, used, points on the rest",
    ),
    Scenario(
        "checkout-tiered-member",
        "POST",
        "/api/v1/cashier/orders",
        prepare=prepare_tiered_checkouts,
        warm_up=lambda url, seconds: prepare_tiered_checkouts(url, seconds, part="warm-up"),
        describes="a tiered paid member's till checkout by member code: the tier's discount, the plan's multiplier",
    ),
    Scenario(
        "catalogue-browse",
        "GET",
        "/api/v1/stores/{storeId}/products",
        prepare=prepare_browse,
        describes="a store's first page of its range, as a shopper opens the mall: from the page cache",
    ),
    Scenario(
        "mall-order-place",
        "POST",
        "/api/v1/me/mall-orders",
        prepare=prepare_mall_orders,
        warm_up=lambda url, seconds: prepare_mall_orders(url, seconds, part="warm-up"),
        describes="a two-line pickup order: prices, stock taken by guarded updates, the order, its JSAPI trade",
    ),
    Scenario(
        "admin-member-search",
        "GET",
        "/api/v1/admin/members?q={phone}",
        prepare=prepare_member_search,
        describes="HQ finds a member by the full phone number: the identity's index, the member's row, its phone",
    ),
    Scenario(
        "poster-cold-jpeg",
        "GET",
        "/api/v1/me/posters",
        prepare=prepare_cold("jpeg"),
        describes="a referral poster nobody has asked for yet, drawn and encoded as JPEG",
    ),
    Scenario(
        "poster-cold-png",
        "GET",
        "/api/v1/me/posters",
        prepare=prepare_cold("png"),
        describes="a referral poster nobody has asked for yet, drawn and encoded as PNG",
    ),
    Scenario(
        "poster-cached",
        "GET",
        "/api/v1/me/posters",
        prepare=prepare_cached,
        describes="the same member's poster again: served from the cache with its ETag",
    ),
]


@dataclass
class Record:
    name: str
    deployment: str
    workers: int
    rps: float
    p50_ms: float
    p99_ms: float
    ceiling_rps: float
    ratio: float


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def pinned(command: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *command] if cpu is not None else command


def run_wrk(
    url: str,
    scenario: Scenario,
    *,
    seconds: int,
    connections: int,
    threads: int,
    cpu: str | None,
    lua: str | None = None,
    expect_errors: bool = False,
) -> tuple[float, float, float]:
    out = wrk_output(url, scenario, seconds=seconds, connections=connections, threads=threads, cpu=cpu, lua=lua)
    if "Non-2xx or 3xx responses" in out and not expect_errors:
        raise SystemExit(f"{scenario.name}: the server answered errors under load:\n{out}")
    return wrk_figures(out)


def wrk_output(
    url: str, scenario: Scenario, *, seconds: int, connections: int, threads: int, cpu: str | None, lua: str | None
) -> str:
    """wrk's report (and whatever the script's done() prints) for one run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if lua is not None:
            script.write(lua.replace("THREADS", str(threads)))
        else:
            script.write(f'wrk.method = "{scenario.method}"\n')
        if lua is None and scenario.body is not None:
            script.write(f"wrk.body = {json.dumps(scenario.body)}\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
    try:
        out = subprocess.run(
            pinned(
                [
                    "wrk",
                    f"-t{threads}",
                    f"-c{connections}",
                    f"-d{seconds}s",
                    "--timeout",
                    "5s",
                    "--latency",
                    "-s",
                    script.name,
                    url + scenario.path,
                ],
                cpu,
            ),
            check=False,
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
    finally:
        os.unlink(script.name)
    if out.returncode != 0:
        raise SystemExit(f"{scenario.name}: wrk failed ({out.returncode}):\n{out.stderr[-2000:]}{out.stdout[-2000:]}")
    return out.stdout


def wrk_figures(out: str) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 in ms, from wrk's report."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))
    return rps, p50, p99


def start_server(env: dict[str, str], port: int, cpu: str | None) -> subprocess.Popen:
    for command in ("migrate", "seed-demo"):
        subprocess.run([PYTHON, "-m", "backend", command], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    log = open(OUT / "server.log", "w")  # a pipe nobody reads would fill and stall the server's logging
    server = subprocess.Popen(
        pinned([PYTHON, "-m", "backend", "serve"], cpu),
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise SystemExit(f"the server exited: see {OUT / 'server.log'}")
    server.kill()
    raise SystemExit("the server did not become ready in 30 s")


def flash_sale(
    url: str, args: argparse.Namespace, *, threads: int, cpu: str | None
) -> dict[str, tuple[float, float, float]]:
    """A flash sale on 100 seats: 2,000 seat requests at once, then sold-out answers under load."""
    progress(f"groupbuy: signing in {FLASH_ATTEMPTS} shoppers through the sandbox")
    tokens = shopper_tokens(url, FLASH_ATTEMPTS)
    campaign_id, store_id = flash_campaign(url)
    progress(
        f"groupbuy-flash-join: {FLASH_ATTEMPTS} seat requests from {FLASH_CONNECTIONS} connections"
        f" on {FLASH_SEATS} seats"
    )
    results = {"groupbuy-flash-join": asyncio.run(flash_join(url, campaign_id, store_id, tokens))}
    tokens_file = OUT / "shopper-tokens.txt"
    tokens_file.write_text("\n".join(tokens) + "\n")
    lua = (
        SOLD_OUT_LUA.replace("TOKENS_FILE", str(tokens_file))
        .replace("STORE_ID", str(store_id))
        .replace("CAMPAIGN_ID", str(campaign_id))
    )
    scenario = Scenario("groupbuy-sold-out", "POST", f"/api/v1/groupbuy/campaigns/{campaign_id}/groups")
    progress(f"groupbuy-sold-out: {args.duration} s at {args.connections} connections (every answer a 409)")
    results["groupbuy-sold-out"] = run_wrk(
        url,
        scenario,
        seconds=args.duration,
        connections=args.connections,
        threads=threads,
        cpu=cpu,
        lua=lua,
        expect_errors=True,
    )
    progress(f"groupbuy-sold-out: {results['groupbuy-sold-out'][0]:.0f} req/s")
    request = urllib.request.Request(
        f"{url}/api/v1/groupbuy/campaigns/{campaign_id}/groups",
        method="POST",
        data=json.dumps({"pickupStoreId": store_id}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {tokens[0]}"},
    )
    try:
        urllib.request.urlopen(request, timeout=10)
        raise SystemExit("groupbuy-sold-out: a seat was taken after the sale sold out")
    except urllib.error.HTTPError as error:
        if error.code != 409 or json.loads(error.read())["code"] != "groupbuy.sold_out":
            raise SystemExit(f"groupbuy-sold-out: answered {error.code}, not 409 groupbuy.sold_out") from None
    return results


# The series an operator watches, as /metrics names them (README, "Metrics").
WATCHED_SERIES = (
    "mall_http_requests_total",
    "mall_http_request_duration_seconds",
    "mall_orders_total",
    "mall_payments_unknown",
    "mall_sweeper_lag_seconds",
    "mall_sweeper_runs_total",
    "mall_poster_cache_total",
)


def orders_counted(url: str, kind: str, event: str) -> float:
    """The server's count of orders of that kind and outcome (a checkout record checks that none failed)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mall_orders_total" and sample.labels == {"kind": kind, "event": event}
    )


def scrape_metrics(url: str) -> None:
    """After the run: the server's /metrics, kept beside the records, with a line on what it counted."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    (OUT / "metrics.txt").write_text(text)
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("mall_http_requests_total", "mall_orders_total", "mall_payments_unknown"):
                totals[sample.name] = totals.get(sample.name, 0) + sample.value
            elif sample.name in WATCHED_SERIES or sample.name.endswith("_count"):
                totals.setdefault(sample.name, sample.value)
    present = [name for name in WATCHED_SERIES if any(key.startswith(name) for key in totals)]
    missing = sorted(set(WATCHED_SERIES) - set(present))
    progress(
        f"/metrics after the run: {totals.get('mall_http_requests_total', 0):.0f} requests counted, "
        f"{totals.get('mall_orders_total', 0):.0f} order events, "
        f"{totals.get('mall_payments_unknown', 0):.0f} payments unknown"
        + (f"; not shown (nothing counted): {', '.join(missing)}" if missing else "; every watched series shown")
        + f" -> {(OUT / 'metrics.txt').relative_to(ROOT)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deployment", choices=["embedded", "scale-out"], default="embedded")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (default 10)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--only", nargs="*", default=None, help="scenario names besides the ceiling")
    parser.add_argument("--bare-pillow", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_pillow is not None:
        print(json.dumps(bare_pillow_jpeg(args.bare_pillow)))
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: run scripts/bench, which installs it")

    workers = 2 if args.deployment == "scale-out" else 1
    # wrk shares the machine's cores with the server: one load thread per server worker. A single
    # worker and wrk get a core each, so that the scheduler never stacks them on one.
    threads = workers
    separate = workers == 1 and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    server_cpu, load_cpu = ("0", "1") if separate else (None, None)
    port = free_port()
    OUT.mkdir(parents=True, exist_ok=True)
    var_dir, secret_key = OUT / "var", secrets.token_urlsafe(48)
    RUN_SECRET["secret_key"] = secret_key
    shutil.rmtree(var_dir, ignore_errors=True)  # this run's keys, as this run's database
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WORKERS": str(workers),
        "ACCESS_LOG": "false",
        "RATE_LIMIT_PER_MINUTE": str(10**9),
        "POSTER_LIMIT_PER_MINUTE": str(10**9),
        # One cashier at one till sends all 50 connections' member-code checkouts: on the scale-out deployment
        # their places in the till's lookup counter (taken before the code is checked, given back after) are
        # held concurrently and would pass the limit that guards against guessing. Still counted, never full.
        "MEMBER_LOOKUP_FAILURE_LIMIT": str(10**9),
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "PAYMENT_PROVIDER": "sandbox",
        # Stated, not found: the bench seals WeChat Pay's notifications with the sandbox keys kept under this
        # VAR_DIR (generated by the server at start) and the APIv3 key derived from this SECRET_KEY, for this app.
        "VAR_DIR": str(var_dir),
        "SECRET_KEY": secret_key,
        "WECHAT_APP_ID": APP_ID,
    }
    if args.deployment == "scale-out":
        env["DATABASE_URL"], env["REDIS_URL"] = os.environ["BENCH_DATABASE_URL"], os.environ["BENCH_REDIS_URL"]
    else:
        database = OUT / "bench.sqlite3"
        for leftover in OUT.glob("bench.sqlite3*"):
            leftover.unlink()
        env["DATABASE_URL"] = f"sqlite:///{database}"
        env.pop("REDIS_URL", None)

    (OUT / "poster-pairs.txt").unlink(missing_ok=True)  # the members behind it belong to the last run's database
    scenarios = [s for s in SCENARIOS if s.name == "ceiling" or args.only is None or s.name in args.only]
    progress(
        f"starting the server: {args.deployment}, {workers} worker(s), port {port}"
        + (", server on core 0 and wrk on core 1" if separate else "")
    )
    server = start_server(env, port, server_cpu)
    url = f"http://127.0.0.1:{port}"
    results: dict[str, tuple[float, float, float]] = {}
    try:
        for scenario in scenarios:
            # The warm-up's requests first: the measured run's are then the freshest (payment codes expire).
            warm_up_lua = scenario.warm_up(url, WARM_UP_SECONDS + 2) if scenario.warm_up else None
            failed_before = orders_counted(url, "till", "failed")
            lua = scenario.prepare(url, args.duration + 2) if scenario.prepare else None
            progress(
                f"{scenario.name}: warming up, then {args.duration} s at {args.connections} connections"
                f" ({scenario.describes})"
            )
            if lua is None:
                run_wrk(
                    url, scenario, seconds=WARM_UP_SECONDS, connections=args.connections, threads=threads, cpu=load_cpu
                )
                results[scenario.name] = run_wrk(
                    url, scenario, seconds=args.duration, connections=args.connections, threads=threads, cpu=load_cpu
                )
            else:  # every request is one of its own: a warm-up, where there is one, has requests of its own too
                if warm_up_lua is not None:
                    run_wrk(
                        url,
                        scenario,
                        seconds=WARM_UP_SECONDS,
                        connections=args.connections,
                        threads=threads,
                        cpu=load_cpu,
                        lua=warm_up_lua,
                    )
                results[scenario.name] = run_wrk(
                    url,
                    scenario,
                    seconds=args.duration,
                    connections=args.connections,
                    threads=threads,
                    cpu=load_cpu,
                    lua=lua,
                )
            if (failed := orders_counted(url, "till", "failed") - failed_before) > 0:
                raise SystemExit(f"{scenario.name}: {failed:.0f} till payments failed: the record would measure them")
            progress(f"{scenario.name}: {results[scenario.name][0]:.0f} req/s")
        if args.only is None or {"groupbuy-flash-join", "groupbuy-sold-out"} & set(args.only):
            results.update(flash_sale(url, args, threads=threads, cpu=load_cpu))
        if args.only is None or "groupbuy-seat-pay" in args.only:
            results["groupbuy-seat-pay"] = seat_pay(
                url, args, threads=threads, cpu=load_cpu, var_dir=var_dir, secret_key=secret_key
            )
            progress(f"groupbuy-seat-pay: {results['groupbuy-seat-pay'][0]:.0f} notifications acknowledged/s")
        if args.deployment == "scale-out" and (args.only is None or "pgbench-checkout-shape" in args.only):
            results["pgbench-checkout-shape"] = pgbench_checkout_shape(url, args)
            progress(f"pgbench-checkout-shape: {results['pgbench-checkout-shape'][0]:.0f} transactions/s")
        if args.only is None or "inventory-upsert-5000" in args.only:
            results["inventory-upsert-5000"] = inventory_upsert(url)
            progress(f"inventory-upsert-5000: {results['inventory-upsert-5000'][1] / 1000:.2f} s (median)")
        if args.only is None or "segment-count-1m" in args.only:
            if args.deployment == "scale-out":
                results["segment-count-1m"] = segment_count(url, env)
            else:
                progress("segment-count-1m: PostgreSQL's, measured with --deployment scale-out")
        if args.only is None or "report-stores-90d" in args.only:
            if args.deployment == "scale-out":
                results["report-stores-90d"] = report_stores(url, env)
            else:
                progress("report-stores-90d: PostgreSQL's, measured with --deployment scale-out")
        if args.only is None or "poster-bare-pillow-jpeg" in args.only:
            progress(
                f"poster-bare-pillow-jpeg: {args.duration} s of the referral template in bare Pillow, one thread"
                + (" on the server's core" if separate else "")
            )
            out = subprocess.run(
                pinned([PYTHON, str(Path(__file__).resolve()), "--bare-pillow", str(args.duration)], server_cpu),
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout
            results["poster-bare-pillow-jpeg"] = tuple(json.loads(out))
            progress(f"poster-bare-pillow-jpeg: {results['poster-bare-pillow-jpeg'][0]:.0f} renders/s")
        scrape_metrics(url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)

    ceiling = results["ceiling"][0]
    records = [
        Record(
            name,
            args.deployment,
            workers,
            round(rps, 1),
            round(p50, 2),
            round(p99, 2),
            round(ceiling, 1),
            round(rps / ceiling, 3),
        )
        for name, (rps, p50, p99) in results.items()
    ]
    (OUT / "latest.json").write_text(json.dumps([asdict(r) for r in records], indent=2) + "\n")
    print(
        f"\n{'scenario':<20} {'deployment':<10} {'workers':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'ceiling':>9} {'ratio':>6}"
    )
    for r in records:
        print(
            f"{r.name:<20} {r.deployment:<10} {r.workers:>7} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.ceiling_rps:>9.0f} {r.ratio:>6.2f}"
        )
    print(f"\nwritten: {(OUT / 'latest.json').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
