from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from enum import Enum
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check

ID = "2026-11-23T02:51:00:764671"
VERSION = "1.38.0"
DESCRIPTION = ""


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="backend", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="MemberMerge",
        tablename="member_merge",
        column_name="seats_moved",
        db_column_name="seats_moved",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="Campaign",
        tablename="groupbuy_campaign",
        column_name="virtual_fill_percent",
        db_column_name="virtual_fill_percent",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 80,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="Group",
        tablename="groupbuy_group",
        column_name="virtual_seats",
        db_column_name="virtual_seats",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="SeatRefund",
        tablename="groupbuy_refund",
        column_name="note",
        db_column_name="note",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 80,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.alter_column(
        table_class_name="SeatRefund",
        tablename="groupbuy_refund",
        column_name="reason",
        db_column_name="reason",
        params={
            "choices": Enum(
                "SeatRefundReason",
                {
                    "group_failed": "group_failed",
                    "late_payment": "late_payment",
                    "after_success": "after_success",
                },
            )
        },
        old_params={
            "choices": Enum("SeatRefundReason", {"group_failed": "group_failed"})
        },
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    manager.add_constraint(
        table_class_name="Campaign",
        tablename="groupbuy_campaign",
        constraint_name="campaign_virtual_fill_in_range",
        constraint_class=Check,
        params={
            "condition": '("virtual_fill_percent" >= 50 AND "virtual_fill_percent" <= 100)'
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="Group",
        tablename="groupbuy_group",
        constraint_name="group_virtual_seats_in_range",
        constraint_class=Check,
        params={
            "condition": '"virtual_seats" >= 0 AND "virtual_seats" + "seats_paid" <= "group_size"'
        },
        schema=None,
    )

    return manager
