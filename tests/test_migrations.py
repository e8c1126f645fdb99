"""Tables and migrations never drift (a table edit without a generated migration fails here), and a migration that
reshapes tables carries the rows there were."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
from piccolo.apps.migrations.commands.new import AutoMigrationManager
from piccolo.conf.apps import Finder

from backend.piccolo_app import APP_CONFIG, TABLES

ROOT = Path(__file__).resolve().parent.parent


async def test_no_table_change_is_missing_a_migration():
    statements = await AutoMigrationManager().get_alter_statements(app_config=APP_CONFIG)
    pending = [line for alter in statements for line in alter.statements]
    assert pending == [], "run: piccolo migrations new backend --auto\n" + "\n".join(pending)


def test_the_one_app_holds_every_table_of_every_domain():
    registered = Finder().get_table_classes()
    assert set(registered) == set(TABLES)
    assert APP_CONFIG.resolved_migrations_folder_path.endswith("/migrations")


async def test_the_order_core_migration_carries_every_row_on_this_engine(tmp_path):
    """A database at the migration head before the order core, with the rows the till and the group-buy code
    of that time wrote, migrated to the head: every order, refund and points entry is there and consistent,
    and the new code refunds, lists and hands over what was carried."""
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgres"):
        name = f"mall_migration_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = url.rsplit("/", 1)[0] + "/" + name
    else:
        admin, name, url = None, "", f"sqlite:///{tmp_path}/before-the-order-core.sqlite3"
    try:
        env = {**os.environ, "DATABASE_URL": url, "VAR_DIR": str(tmp_path)}
        env.pop("REDIS_URL", None)
        done = subprocess.run(
            [sys.executable, "-m", "tests.migration_rows"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.close()
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.rsplit("\nREPORT ", 1)[1])
    ids = report["ids"]
    orders = {row["id"]: row for row in report["orders"]}
    seats = {row["id"]: row for row in report["seats"]}

    # Each member's growth is what their orders received, less what went back; nobody holds a tier before a ladder.
    grown: dict[int, int] = {}
    for order in orders.values():
        if order["member"] is not None and order["paid_at"] is not None:
            grown[order["member"]] = grown.get(order["member"], 0) + order["paid_fen"] - order["refunded_fen"]
    assert {row["id"]: row["growth_fen"] for row in report["members"]} == {
        row["id"]: grown.get(row["id"], 0) for row in report["members"]
    }
    assert any(grown.values()) and {row["tier_code"] for row in report["members"]} == {""}

    # Every till order under its own id, every seat an order numbered after them and after every seat's
    # own id (what the API called the seat before); nothing left behind.
    assert report["legacy_tables"] == []
    assert sorted(orders) == [*range(1, 7), *range(8, 15)] and len(report["trades"]) == 13
    till = lambda key: orders[ids[key]]  # noqa: E731
    assert (till("paid")["kind"], till("paid")["status"]) == ("till", "partially_refunded")
    assert (till("paid")["amount_fen"], till("paid")["discount_fen"], till("paid")["payable_fen"]) == (
        10_000,
        100,
        9_900,
    )
    assert (till("paid")["paid_fen"], till("paid")["refunded_fen"], till("paid")["points_earned"]) == (
        9_900,
        3_960,
        198,
    )
    assert (till("waiting")["kind"], till("waiting")["status"], till("waiting")["paid_fen"]) == (
        "store_code",
        "paying",
        0,
    )
    assert (till("reversed")["status"], till("reversed")["failure_reason"], till("reversed")["paid_fen"]) == (
        "cancelled",
        "REVERSED",
        0,
    )
    assert (till("refused")["status"], till("refused")["failure_reason"]) == ("failed", "NOTENOUGH")
    # Money that came after the close: received and given back, never counted as paid.
    assert (till("late")["status"], till("late")["paid_fen"], till("late")["refunded_fen"]) == (
        "refunded",
        3_000,
        3_000,
    )
    assert till("late")["paid_at"] is None
    # ...and while it is on its way back, the order (cancelled) has received nothing.
    assert (till("late_owed")["status"], till("late_owed")["paid_fen"], till("late_owed")["refunded_fen"]) == (
        "cancelled",
        0,
        0,
    )
    assert till("late_owed")["paid_at"] is None
    trades = {row["order"]: row for row in report["trades"]}
    keys = ("paid", "waiting", "reversed", "late", "refused", "late_owed")
    assert [trades[ids[key]]["status"] for key in keys] == ["paid", "paying", "reversed", "closed", "failed", "closed"]
    assert trades[ids["waiting"]]["next_query_at"] is not None
    assert trades[ids["late"]]["paid_at"] is not None and trades[ids["late_owed"]]["paid_at"] is not None
    # Once the money owed is back, its order counts it: received, and refunded.
    assert report["late_owed_settled"] == ["refunded", 2_500, 2_500]
    assert all(trades[row["id"]]["out_trade_no"] == row["out_trade_no"] for row in orders.values())

    # Seats: an order, a trade and a line each; the seat keeps its own fields and id.
    seat_order = {seat_id: row["order"] for seat_id, row in seats.items()}
    assert sorted(seat_order.values()) == list(range(8, 15))
    assert not set(seats) & set(seat_order.values())  # an id from before names no seat's order now
    by_seat = lambda key: orders[seat_order[ids[key]]]  # noqa: E731
    assert [by_seat(key)["status"] for key in ("seat_to_pick_up", "seat_paid", "seat_waiting", "seat_expired")] == [
        "paid",
        "paid",
        "paying",
        "cancelled",
    ]
    assert (by_seat("seat_failed")["status"], by_seat("seat_failed")["refunded_fen"]) == ("refunded", 9_900)
    assert by_seat("seat_refunded_after")["refunded_fen"] == 9_900  # under way: claimed from the order
    late_seat = by_seat("seat_late")  # paid after it expired, and given back
    assert (late_seat["status"], late_seat["paid_fen"], late_seat["refunded_fen"]) == ("refunded", 9_900, 9_900)
    assert {line["order"] for line in report["lines"]} == set(seat_order.values())
    assert [seats[ids[key]]["held"] for key in ("seat_to_pick_up", "seat_refunded_after", "seat_expired")] in (
        [True, False, False],
        [1, 0, 0],
    )

    # Refunds keep their ids (the seats' after the till's) and get the keys their reasons name.
    refunds = {row["id"]: row for row in report["refunds"]}
    assert sorted(refunds) == [1, 2, 3, 4, 5, 6]
    assert (refunds[ids["refund"]]["order"], refunds[ids["refund"]]["amount_fen"]) == (ids["paid"], 3_960)
    assert refunds[ids["late_refund"]]["kind"] == "late_payment"
    assert {row["idempotency_key"] for row in report["refunds"]} == {
        "refund-0001",
        "late-payment",
        "groupbuy:after_success",
        "groupbuy:group_failed",
    }
    assert all(row["trade"] == row["order"] for row in report["refunds"])

    # The ledger still adds up, and speaks of the order's points as the order's.
    keys = [row["idempotency_key"] for row in report["entries"]]
    assert keys == ["start-500", "order:1:redeem", "order:1:earn", "order:1:refund:1:3", "order:1:refund:1:2"]
    assert {row["source_type"] for row in report["entries"][1:]} == {"order"}
    assert report["referrals"][0]["first_order"] == ids["paid"]

    # The new code on the carried rows: a further 10% refund reverses points in proportion to the 50% now
    # refunded, the succeeded seat is handed over, the one being refunded is not.
    assert report["new_refund"] == {
        "status": "succeeded",
        "order_status": "partially_refunded",
        "refunded_fen": 4_950,
        "reversed": [99 - 79, 50 - 40],
        "balance": [549, 0],
    }
    assert report["lots_remaining"] == report["entries_total"] == 549
    assert report["picked_up"] == [True, "picked_up"]
    assert report["refunded_seat_pickup"] == "groupbuy.order_refunded"
    assert [tuple(row) for row in report["shopper_orders"]] == [
        (seat_order[ids["seat_expired"]], "groupbuy", "expired"),
        (seat_order[ids["seat_to_pick_up"]], "groupbuy", "succeeded"),
        (ids["paid"], "till", None),
    ]
