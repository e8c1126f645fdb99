"""Tables and migrations never drift: a table edit without a generated migration fails here."""

from piccolo.apps.migrations.commands.new import AutoMigrationManager
from piccolo.conf.apps import Finder

from backend.piccolo_app import APP_CONFIG, TABLES


async def test_no_table_change_is_missing_a_migration():
    statements = await AutoMigrationManager().get_alter_statements(app_config=APP_CONFIG)
    pending = [line for alter in statements for line in alter.statements]
    assert pending == [], "run: piccolo migrations new backend --auto\n" + "\n".join(pending)


def test_the_one_app_holds_every_table_of_every_domain():
    registered = Finder().get_table_classes()
    assert set(registered) == set(TABLES)
    assert APP_CONFIG.resolved_migrations_folder_path.endswith("/migrations")
