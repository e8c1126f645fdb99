"""python -m backend serve | migrate | check-config | seed-demo | seed-members | seed-orders | roll-up-reports |
create-store | create-staff"""

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import uvicorn
from msgspec import ValidationError
from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.engine.postgres import PostgresEngine
from piccolo.querystring import QueryString

from backend.catalogue import service as catalogue
from backend.catalogue.schemas import CategoryCreate, InventoryItem, ProductCreate, SkuCreate
from backend.catalogue.tables import Product
from backend.core.clock import utcnow
from backend.core.db import close_database, get_engine, is_unique_violation, write_transaction
from backend.core.http import NoDelayHttpProtocol
from backend.core.logs import logging_config
from backend.core.metrics import prepare_multiprocess
from backend.groupbuy import service as groupbuy
from backend.groupbuy.schemas import CampaignCreate
from backend.groupbuy.tables import Campaign
from backend.hq import report
from backend.members import service as members
from backend.members.tables import EnrolmentChannel, IdentityKind, Member
from backend.members.wechat import WeChatSession
from backend.membership.tables import Tag
from backend.referrals import service as referrals
from backend.referrals.schemas import ReferralCampaignCreate
from backend.referrals.tables import ReferralCampaign
from backend.settings import PROJECT_ROOT, Settings, SettingsError, masked
from backend.stores import service as stores
from backend.stores.schemas import StaffCreate, StoreCreate
from backend.stores.tables import Staff, Store

DEMO_STORES = [  # code, name, address, hours, (latitude, longitude), delivery radius in metres
    ("S001", "旗舰店 Flagship", "1 Riverside Road", "08:00-22:00", (31.2304, 121.4737), 5000),
    ("S002", "社区店 Community", "22 Garden Street", "07:30-21:30", (31.2200, 121.4450), 3000),
    ("S003", "车站店 Station", "3 Station Square", "06:30-23:00", (31.2495, 121.4550), 0),
]
# The demo's fruit range: category, title, photo under assets/products/, SKUs (code, spec, price, member price).
DEMO_RANGE = [
    (
        "热带水果",
        "猫山王榴莲",
        "durian-musang-king.jpg",
        [("D-MSW-1", "1 kg", 19900, 17900), ("D-MSW-2", "2 kg", 36900, None)],
    ),
    ("热带水果", "金枕榴莲", "durian-golden-pillow.jpg", [("D-JZ-3", "约 3 kg", 15800, 13800)]),
    ("热带水果", "台农芒果", "mango-tainong.jpg", [("M-TN-2", "2.5 kg", 4990, 4490)]),
    ("温带水果", "阿克苏苹果", "apple-aksu.jpg", [("A-AKS-5", "5 kg", 5990, None), ("A-AKS-10", "10 kg", 9990, 8990)]),
    ("温带水果", "赣南脐橙", "orange-qiyu.jpg", [("O-GN-5", "5 kg", 3990, 3590)]),
    ("温带水果", "阳光玫瑰葡萄", "grape-shine-muscat.jpg", [("G-SM-1", "1 串 约 700 g", 3980, None)]),
    ("温带水果", "智利车厘子", "cherry-chile.jpg", [("C-CL-J", "JJ 级 1 kg", 12800, 11800)]),
    ("温带水果", "佳沛奇异果", "kiwi-zespri.jpg", [("K-ZS-10", "10 个", 5990, None)]),
    ("浆果瓜类", "丹东草莓", "strawberry-dandong.jpg", [("S-DD-1", "1 kg", 6990, 6490)]),
    ("浆果瓜类", "8424 西瓜", "watermelon-8424.jpg", [("W-8424", "1 个 约 4 kg", 3290, None)]),
]
PRODUCT_PHOTOS = PROJECT_ROOT / "assets" / "products"
DEMO_STAFF = [
    ("hq", "hq_admin", []),
    ("manager1", "store_manager", ["S001"]),
    ("cashier1", "cashier", ["S001"]),
    ("cashier2", "cashier", ["S002"]),
]


# Held by a migration run on PostgreSQL, so that hosts starting together migrate one after another (each
# after the first finds nothing left to do). Any 64-bit number of our own: the bytes of "mall-mig".
MIGRATION_LOCK = int.from_bytes(b"mall-mig", "big", signed=True)


async def migrate(settings: Settings) -> None:
    """Apply the migrations not yet applied; on PostgreSQL under an advisory lock that concurrent runs wait for."""
    if settings.database_kind != "postgres":
        await _run_migrations()
        return
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await _run_migrations()
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await connection.close()


async def _run_migrations() -> None:
    result = await run_forwards("backend")
    if not result.success:
        raise SystemExit(f"migrations failed: {result.message}")


def check_config(settings: Settings) -> None:
    """Print the settings in effect, secrets masked (the environment was checked on the way here)."""
    width = max(len(name) for name in vars(settings))
    for name, value in masked(settings).items():
        print(f"{name.upper():{width}}  {value}")
    print("configuration ok")


def demo_password(env: dict[str, str], var_dir: Path) -> tuple[str, bool]:
    """DEMO_PASSWORD, or one generated once and kept under var/; answers (password, generated)."""
    if env.get("DEMO_PASSWORD"):
        return env["DEMO_PASSWORD"], False
    path = var_dir / "demo_password"
    if path.exists():
        return path.read_text().strip(), False
    var_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.write_text(password)
    path.chmod(0o600)
    return password, True


DEMO_MEMBER = ("oDemoMember000000000000001", "+8613800138000", "王小明")  # openid, phone, nickname


async def seed_demo(password: str, *, app_id: str) -> list[str]:
    """Create the demo stores and staff that are missing; never touches what exists."""
    created = []
    try:
        for code, name, address, hours, (latitude, longitude), radius in DEMO_STORES:
            if not await Store.exists().where(Store.code == code):
                landing, welcome = f"欢迎光临{name.split()[0]}，感谢惠顾。", "已为您开通会员，本次积分已到账。"
                await stores.create_store(
                    StoreCreate(
                        code=code,
                        name=name,
                        address=address,
                        latitude=latitude,
                        longitude=longitude,
                        delivery_radius_m=radius,
                        opening_hours=hours,
                        landing_text=landing,
                        welcome_text=welcome,
                    )
                )
                created.append(f"store {code}")
        ids = {row["code"]: row["id"] for row in await Store.select(Store.id, Store.code)}
        for username, role, codes in DEMO_STAFF:
            if await Staff.exists().where(Staff.username == username):
                continue
            try:
                await stores.create_staff(
                    StaffCreate(username=username, password=password, role=role, store_ids=[ids[c] for c in codes])
                )
            except Exception as error:
                if not is_unique_violation(error):
                    raise
            created.append(f"staff {username}")
        created += await _seed_campaigns(ids)
        created += await _seed_range(ids)
        created += await _seed_member(ids, app_id)
    finally:
        await close_database()
    return created


async def _seed_member(store_ids: dict[str, int], app_id: str) -> list[str]:
    """A member HQ can find by phone, enrolled in the mini-program at S001, when nobody holds the phone yet."""
    openid, phone, nickname = DEMO_MEMBER
    if await members.member_by_identity(IdentityKind.phone, phone) is not None:
        return []
    member_id, _ = await members.find_or_enrol_wechat_member(
        WeChatSession(app_id=app_id, openid=openid, unionid=None),
        channel=EnrolmentChannel.miniprogram,
        store_id=store_ids.get("S001"),
    )
    await members.attach_identity(member_id, IdentityKind.phone, phone)
    await Member.update({Member.nickname: nickname}).where(Member.id == member_id)
    return [f"member {nickname} ({members.mask_phone(phone)})"]


async def _seed_campaigns(store_ids: dict[str, int]) -> list[str]:
    """A referral campaign and a group-buy presale running for the next month, when there are none."""
    hq = await Staff.select(Staff.id).where(Staff.username == "hq").first()
    if hq is None:
        return []
    now, created = utcnow(), []
    if not await ReferralCampaign.exists():
        await referrals.create_campaign(
            ReferralCampaignCreate(
                title="拉新有礼：邀请好友成为会员，双方得积分",
                starts_at=now,
                ends_at=now + timedelta(days=30),
                referrer_points=200,
                referee_points=100,
                holding_period_days=7,
                daily_cap_per_referrer=20,
            ),
            staff_id=hq["id"],
            templates={"referral"},
        )
        created.append("referral campaign")
    if not await Campaign.exists():
        await groupbuy.create_campaign(
            CampaignCreate(
                title="明日榴莲 三人成团",
                product_name="金枕榴莲（约 3 kg）",
                product_image="durian.jpg",
                price_fen=9900,
                original_price_fen=15800,
                group_size=3,
                group_ttl_minutes=24 * 60,
                stock=300,
                per_member_limit=2,
                starts_at=now,
                ends_at=now + timedelta(days=30),
                pickup_store_ids=sorted(store_ids.values()),
                pickup_date=(now + timedelta(days=31)).date(),
            ),
            staff_id=hq["id"],
        )
        created.append("group-buy campaign")
    return created


async def _seed_range(store_ids: dict[str, int]) -> list[str]:
    """The fruit range with its photos, stocked at every demo store (S002 a little cheaper), when there is no
    product yet."""
    if await Product.exists():
        return []
    categories: dict[str, int] = {}
    fruit = await catalogue.create_category(CategoryCreate(name="生鲜水果", sort=0))
    for sort, (category, *_) in enumerate(DEMO_RANGE):
        if category not in categories:
            made = await catalogue.create_category(CategoryCreate(name=category, parent_id=fruit.id, sort=sort))
            categories[category] = made.id
    sku_ids: list[tuple[int, int]] = []
    for category, title, photo, skus in DEMO_RANGE:
        image = await catalogue.save_image((PRODUCT_PHOTOS / photo).read_bytes(), max_bytes=catalogue.IMAGE_MAX_BYTES)
        product = await catalogue.create_product(
            ProductCreate(
                title=title,
                category_id=categories[category],
                images=[image.url],
                skus=[
                    SkuCreate(code=code, spec=spec, price_fen=price, member_price_fen=member_price)
                    for code, spec, price, member_price in skus
                ],
            )
        )
        sku_ids += [(sku.id, sku.price_fen) for sku in product.skus]
    for code, store_id in sorted(store_ids.items()):
        await catalogue.put_inventory(
            store_id,
            [
                InventoryItem(sku_id=sku_id, on_hand=50 + 10 * n, price_fen=price - 100 if code == "S002" else None)
                for n, (sku_id, price) in enumerate(sku_ids)
            ],
        )
    return [f"{len(DEMO_RANGE)} products", f"stock at {len(store_ids)} stores"]


SEED_TAG = ("压测会员 seeded", "bench")  # name, group of the tag the seeded members hold


def _series(count_mark: str, *, postgres: bool) -> tuple[str, str]:
    """(WITH prefix, FROM item) of the numbers 1..count as `s.i`: generate_series on PostgreSQL, a recursive
    common table expression on SQLite."""
    if postgres:
        return "", f"generate_series(1, {count_mark}) AS s(i)"
    return f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count_mark}) ", "s"


def _minutes_before(now_mark: str, minutes: str, *, postgres: bool) -> str:
    if postgres:
        return f"(CAST({now_mark} AS timestamptz) - ({minutes}) * interval '1 minute')"
    return f"strftime('%Y-%m-%d %H:%M:%S+00:00', {now_mark}, '-' || ({minutes}) || ' minutes')"


async def seed_members(count: int) -> str:
    """`count` members for a benchmark, in a few set-based statements: enrolled at the stores there are (one
    made when there is none) over the last year, 95% holding the seed tag, 90% with a paid till order in the
    last 80 days and a third of those an older one too."""
    started = time.perf_counter()
    engine = get_engine()
    postgres = isinstance(engine, PostgresEngine)
    now = utcnow()
    try:
        if not await Store.exists():
            await stores.create_store(StoreCreate(code="SEED", name="压测门店 Seed"))
        name, group = SEED_TAG
        await Tag.insert(Tag(name=name, group_name=group, created_at=now)).on_conflict(action="DO NOTHING")
        tag_id = (await Tag.select(Tag.id).where((Tag.name == name) & (Tag.group_name == group)).first())["id"]
        async with write_transaction():
            base = (await engine.run_querystring(QueryString('SELECT COALESCE(MAX("id"), 0) AS "n" FROM "member"')))[0][
                "n"
            ]
            with_, numbers = _series("{}", postgres=postgres)
            enrolled = _minutes_before("{}", "s.i % 525600", postgres=postgres)
            await engine.run_querystring(
                QueryString(
                    with_ + 'INSERT INTO "member" ("nickname", "avatar_url", "status", "enrolled_store", '
                    '"enrolled_via", "merged_into", "created_at") '
                    f"SELECT 'seed-' || s.i, '', 'active', st.\"id\", CASE s.i % 3 WHEN 0 THEN 'cashier' "
                    f"WHEN 1 THEN 'miniprogram' ELSE 'referral' END, NULL, {enrolled} FROM {numbers} "
                    'JOIN (SELECT "id", ROW_NUMBER() OVER (ORDER BY "id") - 1 AS "n" FROM "store") st '
                    'ON st."n" = s.i % (SELECT COUNT(*) FROM "store")',
                    *((now, count) if postgres else (count, now)),  # in the order their marks appear
                )
            )
            await engine.run_querystring(
                QueryString(
                    'INSERT INTO "member_tag" ("member", "tag", "created_at", "created_by") '
                    'SELECT "id", {}, {}, NULL FROM "member" WHERE "id" > {} AND "id" % 20 <> 0',
                    tag_id,
                    now,
                    base,
                )
            )
            for suffix, where, minutes in (
                ("a", '"id" % 10 <> 0', '(CAST("id" AS BIGINT) * 7919) % 115200'),  # within 80 days
                (
                    "b",
                    '"id" % 10 <> 0 AND "id" % 3 = 0',
                    '144000 + (CAST("id" AS BIGINT) * 104729) % 288000',
                ),  # 100 to 300 days
            ):
                at = _minutes_before("{}", minutes, postgres=postgres)
                await engine.run_querystring(
                    QueryString(
                        'INSERT INTO "sale_order" ("kind", "store", "staff", "member", "status", "amount_fen", '
                        '"discount_fen", "payable_fen", "paid_fen", "refunded_fen", "points_redeemed", '
                        '"points_earned", "coupon_id", "member_enrolled", "scene", "out_trade_no", "pay_by", '
                        '"idempotency_key", "request_hash", "failure_reason", "created_at", "paid_at") '
                        'SELECT \'till\', o."store", NULL, o."id", \'paid\', o."fen", 0, o."fen", '
                        "o.\"fen\", 0, 0, 0, NULL, FALSE, '', "
                        f"'SEED{suffix}' || o.\"id\", o.\"at\", 'seed-{suffix}-' || o.\"id\", '', '', "
                        'o."at", o."at" FROM (SELECT "id", "enrolled_store" AS "store", '
                        f'1000 + ("id" * 37) % 40000 AS "fen", {at} AS "at" FROM "member" '
                        f'WHERE "id" > {{}} AND {where}) o',
                        now,
                        base,
                    )
                )
        if postgres:
            await engine.run_ddl('ANALYZE "member", "member_tag", "sale_order"')
    finally:
        await close_database()
    seconds = time.perf_counter() - started
    return f"{count} members seeded in {seconds:.1f} s (tag {tag_id}: {name} / {group})"


REPORT_STORE_PREFIX = "RPT"  # the stores `seed-orders` adds: RPT0001 ...


SEED_BATCH_ORDERS = 500_000  # orders a seeding transaction writes, with their lines, entries, trades and refunds


async def seed_orders(
    *,
    stores_count: int,
    orders: int,
    days: int,
    members_count: int,
    ledger: bool = False,
    app_id: str = "",
    progress: Callable[[int], None] | None = None,
) -> str:
    """A chain's last `days` days for the store report's benchmark, on PostgreSQL, in set-based statements:
    `stores_count` stores, `members_count` members enrolled at them over the window (a third each by till, mini-program
    and referral), and `orders` paid orders spread over the stores and the window, in the order of their times as a
    live table holds them (60% till, 15% store code, 10% group-buy seats of 1 to 3 units, 10% mall, 5% membership),
    every tenth with a coupon, each earning points (an entry per order), one in fifty partly refunded (with its trade
    and refund). The orders go in by batches of SEED_BATCH_ORDERS, one transaction each; `progress` hears how many
    orders each batch wrote. `ledger`: the rest of what a live database holds for them too (a WeChat identity of the
    mini-program `app_id` and a points account per member, a points lot per earning), for sizing it."""
    started = time.perf_counter()
    engine = get_engine()
    if not isinstance(engine, PostgresEngine):
        raise SystemExit("seed-orders seeds PostgreSQL (the store report's benchmark): set DATABASE_URL")
    now = utcnow()
    minutes = days * 24 * 60

    async def run(sql: str, *args: object) -> None:
        await engine.run_querystring(QueryString(sql, *args))

    async def largest_id(table: str) -> int:
        rows = await engine.run_querystring(QueryString(f'SELECT COALESCE(MAX("id"), 0) AS "n" FROM "{table}"'))
        return rows[0]["n"]

    stores_of_the_chain = (
        'CREATE TEMP TABLE "seed_store" ON COMMIT DROP AS SELECT "id", ROW_NUMBER() OVER (ORDER BY "id") - 1 '
        f'AS "n" FROM "store" WHERE "code" LIKE \'{REPORT_STORE_PREFIX}%\''
    )
    try:
        await run(
            'INSERT INTO "store" ("code", "name", "address", "opening_hours", "points_per_yuan", "delivery_radius_m", '
            '"landing_text", "welcome_text", "landing_url", "active", "created_at") '
            f"SELECT '{REPORT_STORE_PREFIX}' || LPAD(s.i::text, 4, '0'), '报表门店 ' || s.i, '', '', 1, 0, '', '', '', "
            "TRUE, CAST({} AS timestamptz) - interval '400 days' FROM generate_series(1, {}) AS s(i) "
            'ON CONFLICT ("code") DO NOTHING',
            now,
            stores_count,
        )
        async with write_transaction():
            await run(stores_of_the_chain)
            base = await largest_id("member")
            await run(
                'INSERT INTO "member" ("nickname", "avatar_url", "status", "enrolled_store", "enrolled_via", '
                '"merged_into", "created_at", "growth_fen", "tier_code") '
                "SELECT 'rpt-' || s.i, '', 'active', st.\"id\", CASE s.i % 3 WHEN 0 THEN 'cashier' "
                "WHEN 1 THEN 'miniprogram' ELSE 'referral' END, NULL, "
                "CAST({} AS timestamptz) - ((CAST(s.i AS BIGINT) * 7919) % {}) * interval '1 minute', 0, '' "
                'FROM generate_series(1, {}) AS s(i) JOIN "seed_store" st ON st."n" = s.i % {}',
                now,
                minutes,
                members_count,
                stores_count,
            )
            if ledger:
                await run(
                    'INSERT INTO "member_identity" ("member", "kind", "value", "created_at") '
                    "SELECT \"id\", 'wechat_openid', {} || 'oRpt' || LPAD(\"id\"::text, 24, '0'), \"created_at\" "
                    'FROM "member" WHERE "id" > {}',
                    members.openid_value(app_id, ""),  # the openid oRpt000...<id> of that mini-program
                    base,
                )
        for low in range(0, orders, SEED_BATCH_ORDERS):
            high = min(orders, low + SEED_BATCH_ORDERS)
            async with write_transaction():
                await run(stores_of_the_chain)
                await _seed_order_batch(
                    run, await largest_id("sale_order"), await largest_id("points_entry"), ledger=ledger,
                    numbers=(low + 1, high), base=base, members_count=members_count, now=now, orders=orders,
                    minutes=minutes, stores_count=stores_count,
                )  # fmt: skip
            if progress is not None:
                progress(high - low)
        if ledger:
            async with write_transaction():
                await run(
                    'INSERT INTO "points_account" ("member", "balance", "debt", "updated_at") '
                    'SELECT m."id", COALESCE(e."points", 0), 0, {} FROM "member" m LEFT JOIN '
                    '(SELECT "member", SUM("delta") AS "points" FROM "points_entry" WHERE "member" > {} '
                    'GROUP BY "member") e ON e."member" = m."id" WHERE m."id" > {} ON CONFLICT ("member") DO NOTHING',
                    now,
                    base,
                    base,
                )
        tables = ["store", "member", "sale_order", "sale_order_line", "points_entry", "payment_trade", "payment_refund"]
        if ledger:
            tables += ["member_identity", "points_account", "points_lot"]
        await engine.run_ddl("ANALYZE " + ", ".join(f'"{table}"' for table in tables))
    finally:
        await close_database()
    seconds = time.perf_counter() - started
    return f"{orders} orders at {stores_count} stores over {days} days seeded in {seconds:.1f} s"


async def _seed_order_batch(
    run: Callable[..., Awaitable[None]],
    first_order: int,
    first_entry: int,
    *,
    numbers: tuple[int, int],
    base: int,
    members_count: int,
    now: datetime,
    orders: int,
    minutes: int,
    stores_count: int,
    ledger: bool,
) -> None:
    """Orders `numbers` (the first and last, of 1..orders) of `seed_orders`, with what hangs on them."""
    await run(
        'INSERT INTO "sale_order" ("kind", "store", "staff", "member", "status", "amount_fen", "discount_fen", '
        '"payable_fen", "paid_fen", "refunded_fen", "points_redeemed", "points_earned", "coupon_id", '
        '"coupon_discount_fen", "member_enrolled", "tier_discount_fen", "member_price_saved_fen", '
        '"points_multiplier_percent", "scene", "out_trade_no", "pay_by", "idempotency_key", "request_hash", '
        '"failure_reason", "created_at", "paid_at") '
        "SELECT o.kind, o.store, NULL, o.member, 'paid', o.amount, o.coupon, o.amount - o.coupon, "
        "o.amount - o.coupon, 0, 0, (o.amount - o.coupon) / 100, "
        "CASE WHEN o.coupon > 0 THEN o.i END, o.coupon, "
        "FALSE, 0, 0, 100, '', 'RPT' || o.i, o.at, 'rpt-' || o.i, '', '', o.at, o.at FROM ("
        'SELECT s.i, st."id" AS store, {} + 1 + (CAST(s.i AS BIGINT) * 104729) % {} AS member, '
        "CASE WHEN s.i % 20 < 12 THEN 'till' WHEN s.i % 20 < 15 THEN 'store_code' WHEN s.i % 20 < 17 "
        "THEN 'groupbuy' WHEN s.i % 20 < 19 THEN 'mall' ELSE 'membership' END AS kind, "
        "500 + (CAST(s.i AS BIGINT) * 37) % 20000 AS amount, "
        "CASE WHEN s.i % 10 = 0 THEN 300 ELSE 0 END AS coupon, "
        "CAST({} AS timestamptz) - ((CAST({} AS DOUBLE PRECISION) - s.i) * CAST({} AS INTEGER) "
        "/ CAST({} AS DOUBLE PRECISION)) * interval '1 minute' AS at "
        "FROM generate_series(CAST({} AS BIGINT), CAST({} AS BIGINT)) AS s(i) "
        'JOIN "seed_store" st ON st."n" = (CAST(s.i AS BIGINT) * 7919) % {}) o',
        base,
        members_count,
        now,
        orders,
        minutes,
        orders,
        *numbers,
        stores_count,
    )
    await run(
        'INSERT INTO "sale_order_line" '
        '("order", "sku_id", "title", "quantity", "unit_price_fen", "amount_fen") '
        'SELECT "id", NULL, \'拼团席位\', 1 + "id" % 3, "amount_fen", "amount_fen" * (1 + "id" % 3) '
        'FROM "sale_order" WHERE "id" > {} AND "kind" = \'groupbuy\'',
        first_order,
    )
    await run(
        'INSERT INTO "points_entry" ("member", "kind", "delta", "debt_delta", "balance_after", "debt_after", '
        '"store", "source_type", "source_id", "reverses", "idempotency_key", "request_hash", "reason", '
        '"created_at") '
        'SELECT "member", \'earn\', "points_earned", 0, "points_earned", 0, "store", \'order\', '
        'CAST("id" AS TEXT), NULL, \'rpt-earn-\' || "id", \'\', \'\', "paid_at" FROM "sale_order" '
        'WHERE "id" > {} AND "points_earned" > 0',
        first_order,
    )
    if ledger:
        await run(
            'INSERT INTO "points_lot" ("member", "entry", "store", "points", "remaining", "expires_at", '
            '"expired_at") SELECT "member", "id", "store", "delta", "delta", "created_at" + interval \'1 year\', '
            'NULL FROM "points_entry" WHERE "id" > {}',
            first_entry,
        )
    await run(
        'INSERT INTO "payment_trade" ("order", "out_trade_no", "method", "amount_fen", "status", '
        '"transaction_id", "payer_openid", "failure", "next_query_at", "expires_at", "created_at", "paid_at") '
        "SELECT \"id\", \"out_trade_no\", 'micropay', \"paid_fen\", 'paid', 'rpt' || \"id\", '', '', NULL, "
        '"paid_at", "paid_at", "paid_at" FROM "sale_order" WHERE "id" > {} AND "id" % 50 = 0',
        first_order,
    )
    await run(
        'INSERT INTO "payment_refund" ("order", "trade", "kind", "staff", "out_refund_no", "idempotency_key", '
        '"request_hash", "amount_fen", "reason", "status", "refund_id", "failure", "next_query_at", '
        '"created_at", "settled_at") '
        "SELECT t.\"order\", t.\"id\", 'requested', NULL, 'RPTR' || t.\"order\", 'rpt-refund', '', "
        "t.\"amount_fen\" / 2, '', 'succeeded', '', '', NULL, t.\"paid_at\" + interval '1 hour', "
        't."paid_at" + interval \'1 hour\' FROM "payment_trade" t WHERE t."out_trade_no" LIKE \'RPT%\' '
        'AND t."order" > {}',
        first_order,
    )
    await run(
        'UPDATE "sale_order" SET "refunded_fen" = "paid_fen" / 2, "status" = \'partially_refunded\' '
        'WHERE "id" > {} AND "id" % 50 = 0',
        first_order,
    )


async def roll_up_reports() -> str:
    """Write the store report's days that have ended (as the sweeper does, without its limit per round)."""
    started = time.perf_counter()
    try:
        written = await report.roll_up(limit=report.MAX_DAYS * 10)
    finally:
        await close_database()
    return f"{written} days of the store report written in {time.perf_counter() - started:.1f} s"


async def create_store(args: argparse.Namespace) -> None:
    try:
        row = await stores.create_store(StoreCreate(code=args.code, name=args.name, address=args.address))
    finally:
        await close_database()
    print(f"store {row.code} created with id {row.id}")


async def create_staff(args: argparse.Namespace) -> None:
    try:
        rows = await Store.select(Store.id, Store.code).where(Store.code.is_in(args.store)) if args.store else []
        missing = set(args.store) - {row["code"] for row in rows}
        if missing:
            raise SystemExit(f"unknown store codes: {', '.join(sorted(missing))}")
        row = await stores.create_staff(
            StaffCreate(
                username=args.username, password=args.password, role=args.role, store_ids=[r["id"] for r in rows]
            )
        )
    finally:
        await close_database()
    print(f"staff {row.username} ({row.role.value}) created with id {row.id}")


def serve(settings: Settings) -> None:
    if settings.workers > 1:
        prepare_multiprocess(settings.var_dir)  # before the workers start: they count into its files
    # Embedded: the standard asyncio loop; uvloop serves as many requests there but, saturated, leaves
    # some connections waiting several loop turns (write p99 140 ms against 19 ms, scripts/bench).
    # Scale-out: uvloop, whose sockets to PostgreSQL and Redis cost less Python (two scale-out runs each:
    # write-one-insert 0.16 and 0.12 of the ceiling against 0.13 and 0.12, poster-cached 0.26 and 0.24
    # against 0.21 and 0.22, groupbuy-sold-out 0.28 and 0.31 against 0.13 and 0.34).
    # The server is uvicorn: granian 2.8 (ASGI, uvloop, 2 workers) served less in back-to-back scale-out runs
    # (write-one-insert 3,395 against 3,625 req/s, poster-cached 5,633 against 6,737, groupbuy-sold-out 6,219
    # against 7,357, at the same ceiling).
    uvicorn.run(
        "backend.app:create_served_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=False,  # the app's own access log (ACCESS_LOG) has the request id, route and duration
        log_config=logging_config(settings.log_format),
        log_level="info",
        loop="uvloop" if settings.database_kind == "postgres" else "asyncio",
        http=NoDelayHttpProtocol,
        timeout_graceful_shutdown=10,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backend", description="The mall backend.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve HTTP on HOST:PORT (WORKERS processes)")
    commands.add_parser("migrate", help="apply the database migrations (concurrent runs wait for each other)")
    commands.add_parser("check-config", help="print the settings in effect (secrets masked); non-zero on a problem")
    commands.add_parser("seed-demo", help="create the demo stores and staff (idempotent)")
    seed = commands.add_parser("seed-members", help="add members with tags and orders, for a benchmark")
    seed.add_argument("--count", type=int, required=True)
    orders = commands.add_parser(
        "seed-orders", help="add a chain's stores, members and orders (PostgreSQL), for a benchmark"
    )
    orders.add_argument("--stores", type=int, default=500)
    orders.add_argument("--orders", type=int, default=5_000_000)
    orders.add_argument("--days", type=int, default=90)
    orders.add_argument("--members", type=int, default=500_000)
    orders.add_argument("--ledger", action="store_true", help="identities, points accounts and lots too, for sizing")
    commands.add_parser("roll-up-reports", help="write the store report's days that have ended (as the sweeper does)")
    store = commands.add_parser("create-store", help="create a store")
    store.add_argument("--code", required=True)
    store.add_argument("--name", required=True)
    store.add_argument("--address", default="")
    staff = commands.add_parser("create-staff", help="create a staff account")
    staff.add_argument("--username", required=True)
    staff.add_argument("--password", required=True)
    staff.add_argument("--role", required=True, choices=["cashier", "store_manager", "hq_admin"])
    staff.add_argument("--store", action="append", default=[], metavar="CODE")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        raise SystemExit(f"configuration error: {error}") from None
    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "migrate":
            asyncio.run(migrate(settings))
        elif args.command == "check-config":
            check_config(settings)
        elif args.command == "seed-demo":
            password, generated = demo_password(dict(os.environ), settings.var_dir)
            created = asyncio.run(seed_demo(password, app_id=settings.wechat_app_id))
            print("demo data: " + (", ".join(created) if created else "already present"))
            if generated:
                print(f"demo staff password (generated, kept in var/demo_password): {password}")
        elif args.command == "seed-members":
            print(asyncio.run(seed_members(args.count)))
        elif args.command == "seed-orders":
            print(
                asyncio.run(
                    seed_orders(
                        stores_count=args.stores,
                        orders=args.orders,
                        days=args.days,
                        members_count=args.members,
                        ledger=args.ledger,
                        app_id=settings.wechat_app_id,
                    )
                )
            )
        elif args.command == "roll-up-reports":
            print(asyncio.run(roll_up_reports()))
        elif args.command == "create-store":
            asyncio.run(create_store(args))
        elif args.command == "create-staff":
            asyncio.run(create_staff(args))
    except ValidationError as error:
        raise SystemExit(f"invalid input: {error}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
