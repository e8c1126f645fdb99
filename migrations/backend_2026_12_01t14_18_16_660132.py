from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from enum import Enum
from piccolo.columns.column_types import Varchar

ID = "2026-12-01T14:18:16:660132"
VERSION = "1.38.0"
DESCRIPTION = "refund kind reversal"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="backend", description=DESCRIPTION
    )

    manager.alter_column(
        table_class_name="PaymentRefund",
        tablename="payment_refund",
        column_name="kind",
        db_column_name="kind",
        params={
            "choices": Enum(
                "RefundKind",
                {
                    "requested": "requested",
                    "late_payment": "late_payment",
                    "reversal": "reversal",
                },
            )
        },
        old_params={
            "choices": Enum(
                "RefundKind",
                {"requested": "requested", "late_payment": "late_payment"},
            )
        },
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    return manager
