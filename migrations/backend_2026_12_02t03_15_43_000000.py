"""Every member's growth from the orders they paid before tiers existed (the column is added by the migration before
this one: Piccolo runs a migration's raw steps before its column changes)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T03:15:43:000000"
VERSION = "1.38.0"
DESCRIPTION = "Growth carried from the orders paid before tiers"


async def carry_growth() -> None:
    """What each member's orders received, less what went back (money that came after an order had closed unpaid,
    and went back, was never the order's: its paid_at is NULL)."""
    engine = engine_finder()
    assert engine is not None
    await engine.run_ddl(
        'UPDATE "member" SET "growth_fen" = COALESCE((SELECT SUM(o."paid_fen" - o."refunded_fen") '
        'FROM "sale_order" o WHERE o."member" = "member"."id" AND o."paid_at" IS NOT NULL), 0)'
    )


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)
    manager.add_raw(carry_growth)
    return manager
