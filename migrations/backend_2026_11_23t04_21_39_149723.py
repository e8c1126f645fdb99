from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.constraints import Check

ID = "2026-11-23T04:21:39:149723"
VERSION = "1.38.0"
DESCRIPTION = ""


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="backend", description=DESCRIPTION
    )

    manager.drop_constraint(
        table_class_name="Group",
        tablename="groupbuy_group",
        constraint_name="group_virtual_seats_in_range",
        schema=None,
    )

    manager.add_constraint(
        table_class_name="Group",
        tablename="groupbuy_group",
        constraint_name="group_virtual_seats_are_the_empty_ones",
        constraint_class=Check,
        params={
            "condition": '("virtual_seats" = 0 OR ("status" = \'succeeded\' AND "virtual_seats" = "group_size" - "seats_paid"))'
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="ShareLink",
        tablename="referral_share_link",
        constraint_name="share_link_has_one_target",
        constraint_class=Check,
        params={"condition": '(("campaign" IS NULL) <> ("group" IS NULL))'},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="Referral",
        tablename="referral_edge",
        constraint_name="referral_qualified_by_an_order",
        constraint_class=Check,
        params={
            "condition": '("status" <> \'qualified\' OR ("first_order" IS NOT NULL AND "qualified_at" IS NOT NULL))'
        },
        schema=None,
    )

    return manager
