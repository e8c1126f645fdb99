"""The till's orders and refunds and the group-buy seats and refunds step aside as legacy tables: the next
migrations build the order core beside them, carry every row across, and drop them."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-01T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "legacy tables step aside for the order core"

RENAMES = [
    ("Order", "till_order", "LegacyTillOrder", "legacy_till_order"),
    ("Refund", "till_refund", "LegacyTillRefund", "legacy_till_refund"),
    ("Seat", "groupbuy_order", "LegacySeat", "legacy_groupbuy_order"),
    ("SeatRefund", "groupbuy_refund", "LegacySeatRefund", "legacy_groupbuy_refund"),
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)
    for old_class_name, old_tablename, new_class_name, new_tablename in RENAMES:
        manager.rename_table(
            old_class_name=old_class_name,
            old_tablename=old_tablename,
            new_class_name=new_class_name,
            new_tablename=new_tablename,
            schema=None,
        )
    return manager
