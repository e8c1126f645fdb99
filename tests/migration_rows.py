"""Run as `python -m tests.migration_rows` with DATABASE_URL naming an empty database: builds the schema as it
was before the order core, puts rows in it the way the till and the group-buy code of that time wrote them,
migrates to the head, and prints (as JSON) what the rows became and what the new code does with them.

A process of its own, so that its engine, its Piccolo registry and its settings are the database's alone.
"""

import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta

os.environ.setdefault("PICCOLO_CONF", "backend.piccolo_conf")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="mall-migration-"))
os.environ.setdefault("SECRET_KEY", "migration-rows-" + "s" * 32)
os.environ["PAYMENT_PROVIDER"] = "sandbox"

from piccolo.apps.migrations.commands.forwards import run_forwards  # noqa: E402
from piccolo.querystring import QueryString  # noqa: E402

from backend.core.db import close_database, get_engine  # noqa: E402
from backend.groupbuy import service as groupbuy  # noqa: E402
from backend.orders import service as orders  # noqa: E402
from backend.payments import refunds  # noqa: E402
from backend.payments.policy import PaymentPolicy  # noqa: E402
from backend.points import service as points  # noqa: E402
from backend.points.effects import refund_key  # noqa: E402
from backend.sandbox.keys import load_sandbox_keys  # noqa: E402
from backend.sandbox.provider import SandboxProvider  # noqa: E402
from backend.settings import Settings  # noqa: E402

BEFORE_THE_ORDER_CORE = "2026-11-23T04:21:39:149723"
NOW = datetime.now(UTC).replace(microsecond=0)
APP = "wx-sandbox-app"


async def insert(table: str, **values: object) -> int:
    names = ", ".join(f'"{name}"' for name in values)
    marks = ", ".join("{}" for _ in values)
    rows = await get_engine().run_querystring(
        QueryString(f'INSERT INTO "{table}" ({names}) VALUES ({marks}) RETURNING "id"', *values.values())
    )
    return rows[0]["id"]


async def select(sql: str, *args: object) -> list[dict]:
    return [dict(row) for row in await get_engine().run_querystring(QueryString(sql, *args))]


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


async def old_rows() -> dict[str, int]:
    """What the code before the order core left behind: every state its till orders and seats could be in."""
    ids: dict[str, int] = {}
    store = ids["store"] = await insert(
        "store",
        code="S001",
        name="Store",
        address="",
        opening_hours="",
        points_per_yuan=2,
        landing_text="",
        landing_url="",
        active=True,
        created_at=at(-600),
    )
    staff = ids["staff"] = await insert(
        "staff",
        username="cashier1",
        password_hash="x",
        role="cashier",
        display_name="",
        active=True,
        created_at=at(-600),
    )
    for name in ("shopper", "friend", "newcomer"):
        ids[name] = await insert(
            "member",
            nickname=name,
            avatar_url="",
            status="active",
            enrolled_store=store,
            enrolled_via="cashier",
            created_at=at(-500),
        )
        await insert(
            "member_identity", member=ids[name], kind="wechat_openid", value=f"{APP}:o{name:0>27}", created_at=at(-500)
        )
    shopper = ids["shopper"]

    def till_order(**values: object) -> dict:
        return {
            "store": store,
            "staff": staff,
            "member": None,
            "channel": "till",
            "amount_fen": 10_000,
            "points_redeemed": 0,
            "paid_fen": 10_000,
            "status": "paid",
            "idempotency_key": "",
            "request_hash": "h" * 64,
            "transaction_id": "",
            "payer_openid": "",
            "member_enrolled": False,
            "points_earned": 0,
            "failure": "",
            "next_query_at": None,
            "reverse_at": at(-299),
            "created_at": at(-300),
            "paid_at": None,
            "refunded_fen": 0,
            "scene": "",
            **values,
        }

    # A paid till order that redeemed 100 points (a 100 fen discount), earned 198, and was refunded 40%.
    ids["paid"] = await insert(
        "till_order",
        **till_order(
            member=shopper,
            amount_fen=10_000,
            points_redeemed=100,
            paid_fen=9_900,
            status="partially_refunded",
            out_trade_no="20261101000000PaidOrder00001",
            idempotency_key="checkout-0001",
            transaction_id="42" + "1" * 26,
            payer_openid="o" + "shopper".rjust(27, "0"),
            points_earned=198,
            paid_at=at(-298),
            refunded_fen=3_960,
        ),
    )
    await insert(
        "sandbox_trade",
        out_trade_no="20261101000000PaidOrder00001",
        transaction_id="42" + "1" * 26,
        openid="oshopper",
        amount_fen=9_900,
        scenario="success",
        state="REFUND",
        queries=0,
        reversals=0,
        created_at=at(-300),
        prepay_id="",
        refunded_fen=3_960,
        trade_type="MICROPAY",
    )
    # A store-code order still waiting, one reversed unpaid, one whose money came after it closed, one refused.
    ids["waiting"] = await insert(
        "till_order",
        **till_order(
            member=ids["friend"],
            channel="store_code",
            amount_fen=2_000,
            paid_fen=2_000,
            status="paying",
            out_trade_no="20261101000000WaitingOrder01",
            idempotency_key="20261101000000WaitingOrder01",
            next_query_at=at(1),
            reverse_at=at(14),
        ),
    )
    ids["reversed"] = await insert(
        "till_order",
        **till_order(
            status="cancelled",
            failure="REVERSED",
            out_trade_no="20261101000000ReversedOrder1",
            idempotency_key="checkout-0002",
        ),
    )
    ids["late"] = await insert(
        "till_order",
        **till_order(
            member=ids["friend"],
            channel="store_code",
            amount_fen=3_000,
            paid_fen=3_000,
            status="refunded",
            failure="EXPIRED",
            out_trade_no="20261101000000LatePayment001",
            idempotency_key="20261101000000LatePayment001",
            transaction_id="42" + "2" * 26,
            paid_at=at(-200),
            refunded_fen=3_000,
        ),
    )
    ids["refused"] = await insert(
        "till_order",
        **till_order(
            status="failed",
            failure="NOTENOUGH",
            out_trade_no="20261101000000RefusedOrder1",
            idempotency_key="checkout-3",
        ),
    )
    # Money that came after a close, its refund still under way: the old code counted it as paid already.
    ids["late_owed"] = await insert(
        "till_order",
        **till_order(
            member=ids["friend"],
            channel="store_code",
            amount_fen=2_500,
            paid_fen=2_500,
            status="cancelled",
            failure="EXPIRED",
            out_trade_no="20261101000000LateOwed00001",
            idempotency_key="20261101000000LateOwed00001",
            transaction_id="42" + "4" * 26,
            paid_at=at(-20),
            refunded_fen=2_500,
        ),
    )
    ids["refund"] = await insert(
        "till_refund",
        order=ids["paid"],
        kind="requested",
        staff=staff,
        out_refund_no="R" + "a" * 31,
        idempotency_key="refund-0001",
        request_hash="r" * 64,
        amount_fen=3_960,
        reason="two items back",
        status="succeeded",
        refund_id="50" + "1" * 27,
        points_reversed=79,
        points_restored=40,
        failure="",
        next_query_at=None,
        created_at=at(-250),
        settled_at=at(-250),
    )
    ids["late_refund"] = await insert(
        "till_refund",
        order=ids["late"],
        kind="late_payment",
        staff=None,
        out_refund_no="R" + "b" * 31,
        idempotency_key="late-payment",
        request_hash="",
        amount_fen=3_000,
        reason="paid after the order closed",
        status="succeeded",
        refund_id="50" + "2" * 27,
        points_reversed=0,
        points_restored=0,
        failure="",
        next_query_at=None,
        created_at=at(-199),
        settled_at=at(-199),
    )

    ids["late_owed_refund"] = await insert(
        "till_refund",
        order=ids["late_owed"],
        kind="late_payment",
        staff=None,
        out_refund_no="R" + "e" * 31,
        idempotency_key="late-payment",
        request_hash="",
        amount_fen=2_500,
        reason="paid after the order closed",
        status="processing",
        refund_id="",
        points_reversed=0,
        points_restored=0,
        failure="",
        next_query_at=at(1),
        created_at=at(-19),
        settled_at=None,
    )

    # The shopper's ledger, as the paid order and its refund posted it.
    async def entry(kind: str, delta: int, balance: int, key: str, reverses: int | None = None) -> int:
        return await insert(
            "points_entry",
            member=shopper,
            kind=kind,
            delta=delta,
            debt_delta=0,
            balance_after=balance,
            debt_after=0,
            store=store,
            source_type="till_order" if key.startswith("till_order") else "adjustment",
            source_id=str(ids["paid"]) if key.startswith("till_order") else key,
            reverses=reverses,
            idempotency_key=key,
            request_hash="",
            reason="",
            created_at=at(-290),
        )

    start = await entry("adjust", 500, 500, "start-500")
    start_lot = await insert(
        "points_lot",
        member=shopper,
        entry=start,
        store=None,
        points=500,
        remaining=440,
        expires_at=at(60 * 24 * 300),
        expired_at=None,
    )
    redeem = await entry("redeem", -100, 400, f"till_order:{ids['paid']}:redeem")
    await insert("points_lot_use", entry=redeem, lot=start_lot, points=100)
    earn = await entry("earn", 198, 598, f"till_order:{ids['paid']}:earn")
    earn_lot = await insert(
        "points_lot",
        member=shopper,
        entry=earn,
        store=store,
        points=198,
        remaining=119,
        expires_at=at(60 * 24 * 360),
        expired_at=None,
    )
    back = await entry("reverse_earn", -79, 519, f"till_order:{ids['paid']}:refund:{ids['refund']}:{earn}", earn)
    await insert("points_lot_use", entry=back, lot=earn_lot, points=79)
    given = await entry("reverse_redeem", 40, 559, f"till_order:{ids['paid']}:refund:{ids['refund']}:{redeem}", redeem)
    await insert("points_lot_use", entry=given, lot=start_lot, points=40)
    await insert("points_account", member=shopper, balance=559, debt=0, updated_at=at(-250))

    # A group-buy campaign with a group that succeeded, one forming, and one that failed.
    campaign = ids["campaign"] = await insert(
        "groupbuy_campaign",
        title="durian",
        product_name="榴莲",
        product_image="",
        price_fen=9_900,
        original_price_fen=15_800,
        group_size=2,
        group_ttl_minutes=1_440,
        payment_window_minutes=15,
        stock=30,
        stock_left=24,
        per_member_limit=5,
        starts_at=at(-1_000),
        ends_at=at(60 * 24 * 10),
        pickup_date=date.today() + timedelta(days=12),
        virtual_fill=False,
        created_by=None,
        created_at=at(-1_000),
        virtual_fill_percent=80,
    )
    await insert("groupbuy_campaign_store", campaign=campaign, store=store)

    async def group(status: str, seats_taken: int, seats_paid: int) -> int:
        return await insert(
            "groupbuy_group",
            campaign=campaign,
            leader=shopper,
            status=status,
            group_size=2,
            seats_taken=seats_taken,
            seats_paid=seats_paid,
            expires_at=at(600 if status == "forming" else -10),
            settled_at=None,
            created_at=at(-400),
            virtual_seats=0,
        )

    async def seat(group_id: int, member: int, status: str, number: str, **values: object) -> int:
        row = {
            "group": group_id,
            "campaign": campaign,
            "member": member,
            "holder": member,
            "pickup_store": store,
            "quantity": 1,
            "amount_fen": 9_900,
            "status": status,
            "pay_by": at(-380),
            "out_trade_no": f"20261101000000Seat{number:0>10}",
            "transaction_id": "",
            "paid_at": at(-385),
            "pickup_code": None,
            "created_at": at(-390),
            "picked_up_at": None,
            "picked_up_by": None,
        }
        return await insert("groupbuy_order", **{**row, **values})

    succeeded = ids["succeeded_group"] = await group("succeeded", 2, 2)
    ids["seat_to_pick_up"] = await seat(succeeded, shopper, "succeeded", "1", pickup_code="PICKUPCODE23")
    ids["seat_refunded_after"] = await seat(succeeded, ids["friend"], "succeeded", "2", pickup_code="PICKUPCODE45")
    await insert(
        "groupbuy_refund",
        seat=ids["seat_refunded_after"],
        out_refund_no="R" + "c" * 31,
        amount_fen=9_900,
        reason="after_success",
        status="processing",
        refund_id="",
        failure="",
        next_query_at=at(1),
        created_at=at(-5),
        settled_at=None,
        note="坏了",
    )
    forming = await group("forming", 2, 1)
    ids["seat_paid"] = await seat(forming, ids["newcomer"], "paid", "3")
    ids["seat_waiting"] = await seat(forming, ids["friend"], "pending_payment", "4", paid_at=None, pay_by=at(10))
    ids["seat_expired"] = await seat(forming, shopper, "expired", "5", holder=None, paid_at=None)
    failed = await group("failed", 1, 1)
    ids["seat_failed"] = await seat(failed, ids["newcomer"], "refunded", "6")
    await insert(
        "groupbuy_refund",
        seat=ids["seat_failed"],
        out_refund_no="R" + "d" * 31,
        amount_fen=9_900,
        reason="group_failed",
        status="succeeded",
        refund_id="50" + "3" * 27,
        failure="",
        next_query_at=None,
        created_at=at(-9),
        settled_at=at(-9),
        note="",
    )
    # A seat that expired, then was paid for after all; that money is back with the payer.
    ids["seat_late"] = await seat(forming, ids["newcomer"], "expired", "7", holder=None, paid_at=at(-100))
    await insert(
        "groupbuy_refund",
        seat=ids["seat_late"],
        out_refund_no="R" + "f" * 31,
        amount_fen=9_900,
        reason="late_payment",
        status="succeeded",
        refund_id="50" + "5" * 27,
        failure="",
        next_query_at=None,
        created_at=at(-99),
        settled_at=at(-99),
        note="",
    )
    await insert("groupbuy_member_units", campaign=campaign, member=shopper, units=1)

    # The newcomer was referred by the shopper; their first paid order (the till order numbering) qualified it.
    referral_campaign = await insert(
        "referral_campaign",
        title="invite",
        starts_at=at(-1_000),
        ends_at=at(60 * 24 * 10),
        referrer_points=200,
        referee_points=100,
        holding_period_days=7,
        daily_cap_per_referrer=20,
        poster_template="referral",
        created_by=None,
        created_at=at(-1_000),
    )
    link = await insert(
        "referral_share_link",
        scene="S" * 24,
        sharer=shopper,
        target=f"campaign:{referral_campaign}",
        campaign=referral_campaign,
        group=None,
        created_at=at(-900),
    )
    await insert(
        "referral_edge",
        referee=ids["newcomer"],
        referrer=shopper,
        share_link=link,
        campaign=referral_campaign,
        status="qualified",
        first_order=ids["paid"],
        qualified_at=at(-298),
        created_at=at(-800),
    )
    return ids


async def facts(ids: dict[str, int]) -> dict:
    """What the rows became, and what the new code does with them."""
    report: dict = {"ids": ids}
    report["members"] = await select('SELECT "id", "growth_fen", "tier_code" FROM "member" ORDER BY "id"')
    report["orders"] = await select('SELECT * FROM "sale_order" ORDER BY "id"')
    report["trades"] = await select('SELECT * FROM "payment_trade" ORDER BY "id"')
    report["refunds"] = await select('SELECT * FROM "payment_refund" ORDER BY "id"')
    report["lines"] = await select('SELECT * FROM "sale_order_line" ORDER BY "id"')
    report["seats"] = await select('SELECT * FROM "groupbuy_seat" ORDER BY "id"')
    report["entries"] = await select('SELECT * FROM "points_entry" ORDER BY "id"')
    report["referrals"] = await select('SELECT * FROM "referral_edge" ORDER BY "id"')
    report["legacy_tables"] = [
        row["name"]
        for row in await select(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_name LIKE 'legacy%%'"
            if os.environ["DATABASE_URL"].startswith("postgres")
            else "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'legacy%'"
        )
    ]
    report["shopper_orders"] = [
        (view.order.id, view.order.kind.value, view.channel.status)
        for view in await orders.member_orders(ids["shopper"], limit=20)
    ]
    settings = Settings.from_env()
    provider = SandboxProvider(load_sandbox_keys(settings.var_dir, settings.secret_key), appid=settings.wechat_app_id)
    paid = await orders.find_order(ids["paid"])
    refund, _ = await refunds.request_refund(
        paid,
        amount_fen=990,
        idempotency_key="after-migration",
        reason="",
        staff_id=None,
        provider=provider,
        policy=PaymentPolicy.from_settings(settings),
    )
    after = await orders.find_order(ids["paid"])
    report["new_refund"] = {
        "status": refund.status.value,
        "order_status": after.status.value,
        "refunded_fen": after.refunded_fen,
        "reversed": list(await points.reversed_under(refund_key(after.id, refund.id))),
        "balance": list(await points.balance_of(ids["shopper"])),
    }
    await refunds.settle(ids["late_owed_refund"], provider_refund_id="50" + "6" * 27)
    owed = await orders.find_order(ids["late_owed"])
    report["late_owed_settled"] = [owed.status.value, owed.paid_fen, owed.refunded_fen]
    seat_order = next(row["order"] for row in report["seats"] if row["id"] == ids["seat_to_pick_up"])
    picked = await groupbuy.pick_up(store_id=ids["store"], pickup_code="PICKUPCODE23", staff_id=ids["staff"])
    report["picked_up"] = [picked.order_id == seat_order, picked.status.value]
    try:
        await groupbuy.pick_up(store_id=ids["store"], pickup_code="PICKUPCODE45", staff_id=ids["staff"])
        report["refunded_seat_pickup"] = "picked up"
    except Exception as error:  # its refund is under way: it must not be handed over
        report["refunded_seat_pickup"] = getattr(error, "code", repr(error))
    report["lots_remaining"] = (
        await select(
            'SELECT CAST(COALESCE(SUM("remaining"), 0) AS BIGINT) AS total FROM "points_lot" WHERE "member" = {}',
            ids["shopper"],
        )
    )[0]["total"]
    report["entries_total"] = (
        await select(
            'SELECT CAST(COALESCE(SUM("delta"), 0) AS BIGINT) AS total FROM "points_entry" WHERE "member" = {}',
            ids["shopper"],
        )
    )[0]["total"]
    return report


async def main() -> None:
    await run_forwards("backend", migration_id=BEFORE_THE_ORDER_CORE)
    ids = await old_rows()
    result = await run_forwards("backend", migration_id="all")
    if not result.success:
        raise SystemExit(f"migration failed: {result.message}")
    report = await facts(ids)
    await close_database()
    sys.stdout.write("\nREPORT " + json.dumps(report, default=str) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
