from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import ForeignKey

ID = "2026-12-01T14:00:22:784586"
VERSION = "1.38.0"
DESCRIPTION = "identities of a member are found by member"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="backend", description=DESCRIPTION
    )

    manager.alter_column(
        table_class_name="MemberIdentity",
        tablename="member_identity",
        column_name="member",
        db_column_name="member",
        params={"index": True},
        old_params={"index": False},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    return manager
