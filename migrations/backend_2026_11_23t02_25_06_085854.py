from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.constraints import Check

ID = "2026-11-23T02:25:06:085854"
VERSION = "1.38.0"
DESCRIPTION = ""


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="backend", description=DESCRIPTION
    )

    manager.add_constraint(
        table_class_name="Seat",
        tablename="groupbuy_order",
        constraint_name="seat_held_by_its_member",
        constraint_class=Check,
        params={"condition": '("holder" IS NULL OR "holder" = "member")'},
        schema=None,
    )

    return manager
