"""The audit trail is append-only: the database itself refuses to change an entry (the table is made by the
migration before this one: Piccolo runs a migration's raw steps before its table changes)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.engine.sqlite import SQLiteEngine

ID = "2026-12-02T05:45:56:000000"
VERSION = "1.38.0"
DESCRIPTION = "Audit entries are never updated"


async def refuse_updates() -> None:
    engine = engine_finder()
    assert engine is not None
    if isinstance(engine, SQLiteEngine):
        await engine.run_ddl(
            'CREATE TRIGGER "audit_entry_never_updated" BEFORE UPDATE ON "audit_entry" '
            "BEGIN SELECT RAISE(ABORT, 'audit entries are never changed'); END"
        )
        return
    await engine.run_ddl(
        'CREATE FUNCTION "audit_entry_never_updated"() RETURNS trigger LANGUAGE plpgsql AS '
        "$$ BEGIN RAISE EXCEPTION 'audit entries are never changed'; END $$"
    )
    await engine.run_ddl(
        'CREATE TRIGGER "audit_entry_never_updated" BEFORE UPDATE ON "audit_entry" '
        'FOR EACH ROW EXECUTE FUNCTION "audit_entry_never_updated"()'
    )


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="backend", description=DESCRIPTION)
    manager.add_raw(refuse_updates)
    return manager
