"""The audit trail: every HQ or store-manager write records who did it, to which row, and what it changed.

The staff dependency names the actor for the request (`acting`); a service writes the entry with `record`
inside the transaction of the change it describes, so that a change and its entry are kept or lost together.
"""

import json
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import msgspec
from piccolo.table import Table

from backend.audit.tables import AuditEntry
from backend.core.clock import utcnow
from backend.core.db import hold, insert_row
from backend.core.requestid import current_request_id


@dataclass(frozen=True, slots=True)
class Actor:
    staff_id: int
    username: str
    role: str
    client: str


_actor: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def acting(actor: Actor) -> None:
    """The staff account this request acts as, for the entries its writes record."""
    _actor.set(actor)


def _plain(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list | set | frozenset):
        items = [_plain(item) for item in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    return value


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, list[Any]]:
    """{field: [before, after]} of the fields whose values differ (a creation's befores are null)."""
    before, after = before or {}, after or {}
    changed: dict[str, list[Any]] = {}
    for name in (*before, *(name for name in after if name not in before)):
        old, new = _plain(before.get(name)), _plain(after.get(name))
        if old != new:
            changed[name] = [old, new]
    return changed


async def record(
    action: str,
    entity: str,
    entity_id: int | str | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    store_id: int | None = None,
) -> None:
    """Inside the write's transaction: one entry for the request's actor (None: the system)."""
    actor = _actor.get()
    await insert_row(
        AuditEntry,
        at=utcnow(),
        actor_id=actor.staff_id if actor else None,
        actor_username=actor.username if actor else "",
        actor_role=actor.role if actor else "",
        client=actor.client[:64] if actor else "",
        request_id=current_request_id.get(),
        action=action,
        entity=entity,
        entity_id="" if entity_id is None else str(entity_id),
        store_id=store_id,
        changes=json.dumps(changes(before, after), ensure_ascii=False, separators=(",", ":")),
    )


async def update_row(
    table: type[Table], row_id: int, values: dict[str, Any], *, action: str, entity: str, store_id: int | None = None
) -> dict[str, Any] | None:
    """Inside a write transaction: set `values` (by column name) on the row, held while it is read, and record
    what changed; answers the row's values as they were (None: no such row). Setting nothing records nothing."""
    if await hold(table, row_id, table._meta.primary_key) is None:
        return None
    columns = [table._meta.get_column_by_name(name) for name in values]
    before = await table.select(*columns).where(table._meta.primary_key == row_id).first() if columns else {}
    if changed := {name: value for name, value in values.items() if _plain(before[name]) != _plain(value)}:
        await table.update({table._meta.get_column_by_name(name): value for name, value in changed.items()}).where(
            table._meta.primary_key == row_id
        )
        await record(action, entity, row_id, before=before, after=changed, store_id=store_id)
    return before


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: datetime
    actor_id: int | None
    actor_username: str
    actor_role: str
    client: str
    request_id: str
    action: str
    entity: str
    entity_id: str
    store_id: int | None
    changes: dict[str, list[Any]]


async def entries(
    *,
    actor_id: int | None = None,
    entity: str | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Entry]:
    """Newest first, by the filters given."""
    query = AuditEntry.select().order_by(AuditEntry.id, ascending=False).limit(limit)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return [Entry(**{**row, "changes": json.loads(row["changes"])}) for row in await query]
