"""Every till order, store-code order and group-buy seat, with its refunds, moves into the order core, and the
legacy tables are dropped.

- A till or store-code order keeps its id: its order, and its one payment trade, are numbered as it was,
  so receipts, ledger entries and referrals that name it still do. A seat's order and trade are numbered
  after them (the seat's id plus the largest till order id); the seat keeps its own id.
- `paidFen` becomes what was received (0 for an order never paid), the old `paid_fen` (what the payer was
  asked for) becomes `payable_fen`, and the points discount becomes `discount_fen`.
- Money that arrived after an order had closed (a late payment, refunded) stays received and refunded,
  but the order never counts as paid: its order has no `paid_at`, its trade keeps the moment the money came.
- Refunds keep their ids (a seat's are numbered after the till's); a seat's refund gets the key its reason
  names (`groupbuy:group_failed`, `groupbuy:after_success`, `late-payment`); a seat that expired, or has a
  refund under way or done, has let go of its units (`held` false), as the old code had, and cannot be
  picked up.
- Points entries of an order are spoken of as the order's (`order`, `order:{id}:...`), as new ones are.

The SQL is plain enough for SQLite and PostgreSQL alike; PostgreSQL's id sequences are moved past the
carried ids.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-12-01T12:58:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the old till and seat tables, once their rows are in the order core"

# A seat's order is numbered past every till order and every seat: an id a client kept from before (a seat's
# own was its order's) then names no other seat's order, and answers 404.
TILL_OFFSET = (
    '(SELECT MAX("top") FROM (SELECT COALESCE(MAX("id"), 0) AS "top" FROM "legacy_till_order" '
    'UNION ALL SELECT COALESCE(MAX("id"), 0) FROM "legacy_groupbuy_order") AS "tops")'
)
REFUND_OFFSET = '(SELECT COALESCE(MAX("id"), 0) FROM "legacy_till_refund")'
LATE_TILL = 'EXISTS (SELECT 1 FROM "legacy_till_refund" r WHERE r."order" = o."id" AND r."kind" = \'late_payment\')'
LATE_SEAT = (
    'EXISTS (SELECT 1 FROM "legacy_groupbuy_refund" r WHERE r."seat" = s."id" AND r."reason" = \'late_payment\')'
)
SEAT_REFUNDED = (
    'COALESCE((SELECT r."amount_fen" FROM "legacy_groupbuy_refund" r '
    "WHERE r.\"seat\" = s.\"id\" AND r.\"status\" IN ('processing', 'succeeded')), 0)"
)
UNPAID_TRADE = (
    "CASE WHEN o.\"failure\" IN ('REVERSED', 'REVOKED') THEN 'reversed' "
    "WHEN o.\"failure\" IN ('EXPIRED', 'CLOSED', 'CANCELLED') THEN 'closed' "
    "WHEN o.\"channel\" = 'till' AND o.\"status\" = 'cancelled' THEN 'reversed' "
    "WHEN o.\"status\" = 'cancelled' THEN 'closed' ELSE 'failed' END"
)

STATEMENTS = [
    # Till and store-code orders, under their own ids.
    f"""
    INSERT INTO "sale_order" ("id", "kind", "store", "staff", "member", "status", "amount_fen", "discount_fen",
        "payable_fen", "paid_fen", "refunded_fen", "points_redeemed", "points_earned", "coupon_id",
        "member_enrolled", "scene", "out_trade_no", "pay_by", "idempotency_key", "request_hash",
        "failure_reason", "created_at", "paid_at")
    SELECT o."id", o."channel", o."store", o."staff", o."member", o."status", o."amount_fen",
        o."amount_fen" - o."paid_fen", o."paid_fen",
        CASE WHEN o."paid_at" IS NOT NULL THEN o."paid_fen" ELSE 0 END,
        o."refunded_fen", o."points_redeemed", o."points_earned", NULL, o."member_enrolled", o."scene",
        o."out_trade_no", COALESCE(o."reverse_at", o."created_at"), o."idempotency_key", o."request_hash",
        o."failure", o."created_at", CASE WHEN {LATE_TILL} THEN NULL ELSE o."paid_at" END
    FROM "legacy_till_order" o
    """,
    f"""
    INSERT INTO "payment_trade" ("id", "order", "out_trade_no", "method", "amount_fen", "status", "transaction_id",
        "payer_openid", "failure", "next_query_at", "expires_at", "created_at", "paid_at")
    SELECT o."id", o."id", o."out_trade_no", CASE o."channel" WHEN 'till' THEN 'micropay' ELSE 'jsapi' END,
        o."paid_fen",
        CASE WHEN o."status" = 'paying' THEN 'paying'
             WHEN o."status" IN ('failed', 'cancelled') OR {LATE_TILL} THEN {UNPAID_TRADE}
             ELSE 'paid' END,
        o."transaction_id", o."payer_openid", o."failure", o."next_query_at",
        COALESCE(o."reverse_at", o."created_at"), o."created_at", o."paid_at"
    FROM "legacy_till_order" o
    """,
    """
    INSERT INTO "payment_refund" ("id", "order", "trade", "kind", "staff", "out_refund_no", "idempotency_key",
        "request_hash", "amount_fen", "reason", "status", "refund_id", "failure", "next_query_at", "created_at",
        "settled_at")
    SELECT r."id", r."order", r."order", r."kind", r."staff", r."out_refund_no", r."idempotency_key",
        r."request_hash", r."amount_fen", r."reason", r."status", r."refund_id", r."failure", r."next_query_at",
        r."created_at", r."settled_at"
    FROM "legacy_till_refund" r
    """,
    # Group-buy seats: an order and a trade each, numbered after the till's and the seats' own ids.
    f"""
    INSERT INTO "sale_order" ("id", "kind", "store", "staff", "member", "status", "amount_fen", "discount_fen",
        "payable_fen", "paid_fen", "refunded_fen", "points_redeemed", "points_earned", "coupon_id",
        "member_enrolled", "scene", "out_trade_no", "pay_by", "idempotency_key", "request_hash",
        "failure_reason", "created_at", "paid_at")
    SELECT s."id" + {TILL_OFFSET}, 'groupbuy', s."pickup_store", NULL, s."member",
        CASE WHEN s."status" = 'pending_payment' THEN 'paying'
             WHEN s."status" = 'refunded' THEN 'refunded'
             WHEN s."status" = 'expired' THEN 'cancelled'
             ELSE 'paid' END,
        s."amount_fen", 0, s."amount_fen",
        CASE WHEN s."paid_at" IS NOT NULL THEN s."amount_fen" ELSE 0 END,
        {SEAT_REFUNDED}, 0, 0, NULL, FALSE, '', s."out_trade_no", s."pay_by", s."out_trade_no", '',
        CASE WHEN s."status" = 'expired' OR {LATE_SEAT} THEN 'EXPIRED' ELSE '' END,
        s."created_at", CASE WHEN {LATE_SEAT} THEN NULL ELSE s."paid_at" END
    FROM "legacy_groupbuy_order" s
    """,
    f"""
    INSERT INTO "payment_trade" ("id", "order", "out_trade_no", "method", "amount_fen", "status", "transaction_id",
        "payer_openid", "failure", "next_query_at", "expires_at", "created_at", "paid_at")
    SELECT s."id" + {TILL_OFFSET}, s."id" + {TILL_OFFSET}, s."out_trade_no", 'jsapi', s."amount_fen",
        CASE WHEN s."status" = 'pending_payment' THEN 'paying'
             WHEN s."status" = 'expired' OR {LATE_SEAT} THEN 'closed'
             ELSE 'paid' END,
        s."transaction_id", '',
        CASE WHEN s."status" = 'expired' OR {LATE_SEAT} THEN 'EXPIRED' ELSE '' END,
        CASE WHEN s."status" = 'pending_payment' THEN s."pay_by" ELSE NULL END,
        s."pay_by", s."created_at", s."paid_at"
    FROM "legacy_groupbuy_order" s
    """,
    f"""
    INSERT INTO "payment_refund" ("id", "order", "trade", "kind", "staff", "out_refund_no", "idempotency_key",
        "request_hash", "amount_fen", "reason", "status", "refund_id", "failure", "next_query_at", "created_at",
        "settled_at")
    SELECT r."id" + {REFUND_OFFSET}, r."seat" + {TILL_OFFSET}, r."seat" + {TILL_OFFSET},
        CASE r."reason" WHEN 'late_payment' THEN 'late_payment' ELSE 'requested' END, NULL, r."out_refund_no",
        CASE r."reason" WHEN 'group_failed' THEN 'groupbuy:group_failed'
                        WHEN 'after_success' THEN 'groupbuy:after_success' ELSE 'late-payment' END,
        '', r."amount_fen",
        CASE WHEN r."note" <> '' THEN r."note" ELSE r."reason" END,
        r."status", r."refund_id", r."failure", r."next_query_at", r."created_at", r."settled_at"
    FROM "legacy_groupbuy_refund" r
    """,
    f"""
    INSERT INTO "sale_order_line" ("order", "sku_id", "title", "quantity", "unit_price_fen", "amount_fen")
    SELECT s."id" + {TILL_OFFSET}, NULL, c."product_name", s."quantity", s."amount_fen" / s."quantity",
        s."amount_fen"
    FROM "legacy_groupbuy_order" s JOIN "groupbuy_campaign" c ON c."id" = s."campaign"
    ORDER BY s."id"
    """,
    f"""
    INSERT INTO "groupbuy_seat" ("id", "order", "group", "campaign", "member", "holder", "held", "pickup_store",
        "quantity", "status", "pickup_code", "picked_up_at", "picked_up_by", "created_at")
    SELECT s."id", s."id" + {TILL_OFFSET}, s."group", s."campaign", s."member", s."holder",
        CASE WHEN s."status" IN ('expired', 'refunded')
                  OR EXISTS (SELECT 1 FROM "legacy_groupbuy_refund" r WHERE r."seat" = s."id") THEN FALSE
             ELSE TRUE END,
        s."pickup_store", s."quantity", s."status", s."pickup_code", s."picked_up_at", s."picked_up_by",
        s."created_at"
    FROM "legacy_groupbuy_order" s
    """,
    # An order that ended unpaid received nothing: money that landed on it afterwards counts on it (received,
    # and refunded) only once it is back with the payer.
    """
    UPDATE "sale_order" SET "paid_fen" = 0, "refunded_fen" = 0, "paid_at" = NULL
    WHERE "status" IN ('failed', 'cancelled')
    """,
    """
    UPDATE "sale_order" SET "status" = 'refunded',
        "paid_fen" = (SELECT r."amount_fen" FROM "payment_refund" r
                      WHERE r."order" = "sale_order"."id" AND r."kind" = 'late_payment' AND r."status" = 'succeeded'),
        "refunded_fen" = (SELECT r."amount_fen" FROM "payment_refund" r
                          WHERE r."order" = "sale_order"."id" AND r."kind" = 'late_payment' AND r."status" = 'succeeded')
    WHERE "status" IN ('failed', 'cancelled') AND EXISTS (
        SELECT 1 FROM "payment_refund" r
        WHERE r."order" = "sale_order"."id" AND r."kind" = 'late_payment' AND r."status" = 'succeeded')
    """,
    # The ledger speaks of an order's points as the order's.
    """
    UPDATE "points_entry" SET "idempotency_key" = 'order:' || SUBSTR("idempotency_key", 12)
    WHERE SUBSTR("idempotency_key", 1, 11) = 'till_order:'
    """,
    """UPDATE "points_entry" SET "source_type" = 'order' WHERE "source_type" = 'till_order'""",
]

SEQUENCES = ["sale_order", "payment_trade", "payment_refund", "groupbuy_seat", "sale_order_line"]


async def carry_rows() -> None:
    engine = engine_finder()
    assert engine is not None
    for statement in STATEMENTS:
        await engine.run_ddl(statement)
    if isinstance(engine, PostgresEngine):
        for table in SEQUENCES:
            await engine.run_ddl(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f'COALESCE((SELECT MAX("id") FROM "{table}"), 0) + 1, false)'
            )


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)
    manager.add_raw(carry_rows)  # runs before the drops below
    # Children before parents: a parent table is dropped only once nothing refers to it.
    manager.drop_table(class_name="LegacySeatRefund", tablename="legacy_groupbuy_refund", schema=None)
    manager.drop_table(class_name="LegacyTillRefund", tablename="legacy_till_refund", schema=None)
    manager.drop_table(class_name="LegacySeat", tablename="legacy_groupbuy_order", schema=None)
    manager.drop_table(class_name="LegacyTillOrder", tablename="legacy_till_order", schema=None)
    return manager
