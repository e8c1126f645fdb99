"""Prepared queries and insert_row answer exactly what the same inline Piccolo queries answer, on either engine.

The shapes below are the ones the domains prepare (grep `Prepared(` in backend/), on tables of the tests'
own (tables.py), and each answer is compared value by value and type by type, since `True == 1`.
"""

import copy
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from piccolo.columns.defaults.base import Default

from backend.core.clock import utcnow
from backend.core.db import Prepared, get_engine, insert_row, write_transaction
from backend.core.sqlite.engine import EmbeddedSQLiteEngine
from backend.core.sqlite.prepared import _rows_as_they_are
from backend.members.tables import EnrolmentChannel, Member, MemberStatus
from backend.piccolo_app import TABLES
from backend.stores.tables import Store
from tests.core.sqlite.tables import CONTRACT_TABLES, Crate, CrateKind, CrateTag, Shelf, Tag


async def test_insert_row_matches_piccolo_insert_with_defaults():
    async with write_transaction():
        fast_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier)
        plain = await Member.insert(Member(enrolled_via=EnrolmentChannel.cashier))
    fast = await Member.select().where(Member.id == fast_id).first()
    slow = await Member.select().where(Member.id == plain[0]["id"]).first()
    assert fast_id != plain[0]["id"]
    for row in (fast, slow):
        assert row["status"] == MemberStatus.active and row["enrolled_via"] == "cashier"
        assert row["nickname"] == "" and row["enrolled_store"] is None
        assert row["created_at"].tzinfo is not None
    assert abs((fast["created_at"] - slow["created_at"]).total_seconds()) < 60


async def test_insert_row_refuses_unknown_columns_and_obeys_constraints():
    with pytest.raises(TypeError, match="no columns"):
        await insert_row(Store, code="X1", name="x", owner="nobody")
    with pytest.raises(Exception, match="points_rate_in_range"):
        async with write_transaction():
            await insert_row(Store, code="X2", name="x", points_per_yuan=-5)
    assert await Store.count() == 0


async def test_prepared_queries_answer_what_the_inline_queries_answer():
    ids = [await insert_row(Store, code=f"P{i}", name=f"prepared {i}", points_per_yuan=i) for i in range(3)]
    one = Prepared(lambda store_id: Store.select().where(Store.id == store_id).first())
    for store_id in ids + [10**9]:
        assert await one.run(store_id) == await Store.select().where(Store.id == store_id).first()
    some = Prepared(
        lambda least, active: (
            Store.select(Store.id, Store.code)
            .where((Store.points_per_yuan >= least) & (Store.active == active))
            .order_by(Store.id, ascending=False)
        )
    )
    assert await some.run(1, True) == await Store.select(Store.id, Store.code).where(
        (Store.points_per_yuan >= 1) & (Store.active == True)  # noqa: E712
    ).order_by(Store.id, ascending=False)
    assert [row["id"] for row in await some.run(1, True)] == [ids[2], ids[1]]

    member_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier)
    at = utcnow()
    touch = Prepared(
        lambda member_id, status, when: (
            Member.update({Member.status: status, Member.created_at: when})
            .where((Member.id == member_id) & Member.merged_into.is_null())
            .returning(*Member.all_columns())
        )
    )
    async with write_transaction():
        updated = await touch.run(member_id, MemberStatus.active, at)
    assert updated == [await Member.select().where(Member.id == member_id).first()]
    assert updated[0]["created_at"] == at and updated[0]["status"] == "active"
    assert await touch.run(10**9, MemberStatus.active, at) == []


async def test_prepared_queries_that_ask_for_processing_get_it():
    store_id = await insert_row(Store, code="N1", name="nested")
    member_id = await insert_row(Member, enrolled_via=EnrolmentChannel.cashier, enrolled_store=store_id)
    nested = Prepared(
        lambda member_id: (
            Member.select(Member.id, Member.enrolled_store.name)
            .where(Member.id == member_id)
            .output(nested=True)
            .first()
        )
    )
    inline = (
        await Member.select(Member.id, Member.enrolled_store.name)
        .where(Member.id == member_id)
        .output(nested=True)
        .first()
    )
    assert await nested.run(member_id) == inline == {"id": member_id, "enrolled_store": {"name": "nested"}}


async def test_prepared_queries_refuse_what_they_cannot_bind():
    one = Prepared(lambda store_id: Store.select().where(Store.id == store_id).first())
    with pytest.raises(TypeError, match="None"):
        await one.run(None)
    unbound = Prepared(lambda store_id: Store.select().where(Store.id == 1).first())
    with pytest.raises(TypeError, match="bound"):
        await unbound.run(1)


# The contract, on the tests' own tables ----------------------------------------------------------------

PACKED = date(2026, 11, 30)
T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
WHEN = datetime(2026, 12, 2, 15, 30, 0, 250000, tzinfo=timezone(timedelta(hours=8)))
MISSING = 10**9


def exactly(answer: Any) -> Any:
    """An answer with every value's type (and a time's zone) beside it, keys in order: `True == 1` and
    `1 == 1.0`, but a row holding one is not the row holding the other."""
    if isinstance(answer, list):
        return [exactly(item) for item in answer]
    if isinstance(answer, dict):
        return [(key, exactly(value)) for key, value in answer.items()]
    if isinstance(answer, datetime):
        return (datetime, answer, answer.utcoffset())
    return (type(answer), answer)


@dataclass(frozen=True)
class Stock:
    shelf_a: int
    shelf_b: int
    crates: dict[str, int]  # label -> id


@pytest.fixture
async def stock(contract_tables) -> Stock:
    """Two shelves (B empty) and three crates, written by Piccolo's own inserts."""
    shelves = [(await Shelf.insert(Shelf(name=name)))[0]["id"] for name in ("A", "B")]
    rows = [
        Crate(shelf=shelves[0], label="c1", qty=5, moves=1, weight=1.5, packed_on=PACKED, created_at=T0),
        Crate(
            shelf=shelves[0],
            label="c2",
            kind=CrateKind.sealed,
            sealed=True,
            note="fragile",
            packed_on=PACKED,
            created_at=T0 + timedelta(hours=1),
            checked_at=T0 + timedelta(hours=2),
        ),
        Crate(label="c3", qty=9, packed_on=PACKED - timedelta(days=1), created_at=T0 - timedelta(days=1)),
    ]
    crates = {row.label: (await Crate.insert(row))[0]["id"] for row in rows}
    await Tag.insert(Tag(code="red", created_at=T0), Tag(code="blue", created_at=T0))
    await CrateTag.insert(CrateTag(crate=crates["c1"], tag="red"), CrateTag(crate=crates["c1"], tag="blue"))
    return Stock(shelf_a=shelves[0], shelf_b=shelves[1], crates=crates)


@dataclass(frozen=True)
class Shape:
    name: str
    build: Callable[..., Any]
    arguments: Callable[[Stock], list[tuple[Any, ...]]]  # each tuple one run, in turn, through one plan


READS = [
    Shape(
        "select-all-first",
        lambda crate_id: Crate.select().where(Crate.id == crate_id).first(),
        lambda s: [(s.crates["c1"],), (s.crates["c2"],), (MISSING,)],
    ),
    Shape(
        "select-columns-first-by-enum",
        lambda label, kind: (
            Crate.select(Crate.id, Crate.kind, Crate.sealed)
            .where((Crate.label == label) & (Crate.kind == kind))
            .first()
        ),
        lambda s: [("c1", CrateKind.loose), ("c1", CrateKind.sealed), ("c2", "sealed")],
    ),
    Shape(
        "select-joined-columns-first",
        lambda crate_id: (
            Crate.select(Crate.qty, Crate.weight, Crate.checked_at, Crate.shelf.name)
            .where(Crate.id == crate_id)
            .first()
        ),
        lambda s: [(s.crates["c1"],), (s.crates["c2"],), (s.crates["c3"],)],  # c3 has no shelf
    ),
    Shape(
        "select-columns-ordered",
        lambda least, sealed: (
            Crate.select(Crate.id, Crate.label)
            .where((Crate.qty >= least) & (Crate.sealed == sealed))
            .order_by(Crate.id, ascending=False)
        ),
        lambda s: [(0, False), (0, True), (100, False)],
    ),
    Shape(
        "select-all-ordered",
        lambda shelf_id: Crate.select().where(Crate.shelf == shelf_id).order_by(Crate.label),
        lambda s: [(s.shelf_a,), (s.shelf_b,)],
    ),
    Shape(
        "select-guarded-by-null",
        lambda shelf_id: Crate.select(Crate.id).where((Crate.shelf == shelf_id) & Crate.checked_at.is_null()).first(),
        lambda s: [(s.shelf_a,), (s.shelf_b,)],
    ),
    Shape(
        "select-by-time",
        lambda after: (
            Crate.select(Crate.label, Crate.packed_on, Crate.created_at)
            .where(Crate.created_at > after)
            .order_by(Crate.label)
        ),
        lambda s: [(T0 - timedelta(hours=1),), (T0.astimezone(timezone(timedelta(hours=8))),)],
    ),
    Shape(
        "select-nested-first",
        lambda crate_id: (
            Crate.select(Crate.id, Crate.shelf.name).where(Crate.id == crate_id).output(nested=True).first()
        ),
        lambda s: [(s.crates["c1"],), (s.crates["c3"],)],
    ),
    Shape(
        "select-many-to-many-first",
        lambda crate_id: (
            Crate.select(Crate.label, Crate.tags(Tag.code, as_list=True)).where(Crate.id == crate_id).first()
        ),
        lambda s: [(s.crates["c1"],), (s.crates["c3"],)],
    ),
]

WRITES = [
    Shape(
        "update-returning-columns",
        lambda when, kind, label: (
            Crate.update({Crate.checked_at: when, Crate.kind: kind})
            .where((Crate.label == label) & Crate.checked_at.is_null())
            .returning(Crate.id, Crate.kind, Crate.checked_at)
        ),
        lambda s: [(WHEN, CrateKind.sealed, "c1"), (WHEN, CrateKind.sealed, "c2")],  # c2 was checked already
    ),
    Shape(
        "update-null-and-flag-returning",
        lambda sealed, crate_id, kind: (
            Crate.update({Crate.checked_at: None, Crate.sealed: sealed})
            .where((Crate.id == crate_id) & (Crate.kind == kind))
            .returning(Crate.shelf, Crate.qty, Crate.sealed, Crate.checked_at)
        ),
        lambda s: [(False, s.crates["c2"], CrateKind.sealed), (True, s.crates["c2"], CrateKind.loose)],
    ),
    Shape(
        "update-arithmetic-guarded-returning",
        lambda crate_id, delta, moves, least: (
            Crate.update({Crate.qty: Crate.qty + delta, Crate.moves: Crate.moves + moves})
            .where((Crate.id == crate_id) & (Crate.qty >= least))
            .returning(Crate.qty, Crate.moves)
        ),
        lambda s: [(s.crates["c1"], -5, 1, 5), (s.crates["c1"], -6, 1, 6), (s.crates["c3"], 10**12, 2, 0)],
    ),
    Shape(
        "update-returning-all-columns",
        lambda weight, crate_id: (
            Crate.update({Crate.weight: weight})
            .where((Crate.id == crate_id) & Crate.shelf.is_null())
            .returning(*Crate.all_columns())
        ),
        lambda s: [(2.25, s.crates["c3"]), (2.25, s.crates["c1"])],
    ),
    Shape(
        "insert-on-conflict-returning",
        lambda label, qty, when: (
            Crate.insert(Crate(label=label, qty=qty, created_at=when, packed_on=PACKED))
            .on_conflict(target=Crate.label, action="DO UPDATE", values=[Crate.created_at])
            .returning(Crate.qty, Crate.created_at, Crate.kind)
        ),
        lambda s: [("c4", 3, WHEN), ("c1", 3, WHEN)],  # a new row, then one that is there
    ),
]


def _shape_ids(shapes: list[Shape]) -> list[str]:
    return [shape.name for shape in shapes]


@pytest.mark.parametrize("shape", READS, ids=_shape_ids(READS))
async def test_a_prepared_read_answers_what_the_inline_query_answers(stock, shape):
    prepared = Prepared(shape.build)
    for arguments in shape.arguments(stock):
        inline = await shape.build(*arguments)
        assert exactly(await prepared.run(*arguments)) == exactly(inline), arguments
        async with write_transaction():  # inside a transaction, on the connection that writes
            assert exactly(await prepared.run(*arguments)) == exactly(inline), arguments


class _Undone(Exception):
    pass


async def undone(write: Callable[[], Awaitable[Any]]) -> tuple[Any, Any]:
    """What `write` answers and the crates it leaves, in a write transaction that is then rolled back."""
    try:
        async with write_transaction():
            answer = await write()
            # Without ids: a row inserted twice has another id the second time on PostgreSQL.
            after = await Crate.select(*Crate.all_columns(exclude=[Crate.id])).order_by(Crate.label)
            raise _Undone(answer, after)
    except _Undone as rolled_back:
        return rolled_back.args


@pytest.mark.parametrize("shape", WRITES, ids=_shape_ids(WRITES))
async def test_a_prepared_write_answers_and_writes_what_the_inline_query_does(stock, shape):
    prepared = Prepared(shape.build)
    for arguments in shape.arguments(stock):
        inline = await undone(lambda: shape.build(*arguments))  # noqa: B023 (awaited within the iteration)
        assert exactly(await undone(lambda: prepared.run(*arguments))) == exactly(inline), arguments  # noqa: B023
    answer = await prepared.run(*arguments)  # the last arguments again, committed, outside any transaction
    after = await Crate.select(*Crate.all_columns(exclude=[Crate.id])).order_by(Crate.label)
    assert exactly((answer, after)) == exactly(inline)


@pytest.mark.parametrize("in_transaction", [False, True], ids=["on-its-own", "in-a-transaction"])
async def test_insert_row_writes_the_row_table_insert_writes(contract_tables, in_transaction):
    given = {
        "shelf": None,
        "kind": CrateKind.sealed,
        "qty": 3,
        "moves": 2,
        "weight": 0.5,
        "sealed": True,
        "note": "n",
        "packed_on": PACKED,
        "created_at": WHEN,
        "checked_at": T0,
    }
    outer: AbstractAsyncContextManager[Any] = write_transaction() if in_transaction else nullcontext()
    async with outer:
        fast_id = await insert_row(Crate, label="fast", **given)
        slow_id = (await Crate.insert(Crate(label="slow", **given)))[0]["id"]
        fast_few = await insert_row(Crate, label="fast-few")
        slow_few = (await Crate.insert(Crate(label="slow-few")))[0]["id"]
        tag = await insert_row(Tag, code="t1", uses=4)
        slow_tag = (await Tag.insert(Tag(code="t2", uses=4)))[0]["code"]

    def row(crate_id: int) -> Any:
        return Crate.select(*Crate.all_columns(exclude=[Crate.id, Crate.label])).where(Crate.id == crate_id).first()

    assert exactly(await row(fast_id)) == exactly(await row(slow_id))
    assert (await Crate.select(Crate.label).where(Crate.id == fast_id).first()) == {"label": "fast"}
    evaluated = ["packed_on", "created_at"]  # defaults evaluated as each row is made
    fast, slow = await row(fast_few), await row(slow_few)
    assert exactly({k: v for k, v in fast.items() if k not in evaluated}) == exactly(
        {k: v for k, v in slow.items() if k not in evaluated}
    )
    assert fast["kind"] == "loose" and fast["qty"] == 0 and fast["sealed"] is False and fast["checked_at"] is None
    for made in (fast, slow):
        assert type(made["packed_on"]) is date and made["created_at"].utcoffset() == timedelta(0)
    assert (tag, slow_tag) == ("t1", "t2")  # a primary key that is not the rowid comes back through RETURNING
    tags = await Tag.select(Tag.uses, Tag.created_at).where(Tag.code.is_in(["t1", "t2"])).order_by(Tag.code)
    assert [t["uses"] for t in tags] == [4, 4] and all(t["created_at"].utcoffset() == timedelta(0) for t in tags)


async def test_insert_row_evaluates_default_objects_for_every_row(contract_tables):
    await insert_row(Crate, label="first")  # the table's INSERT is built by now
    before, today = utcnow(), date.today()
    crate_id = await insert_row(Crate, label="second")
    made = await Crate.select(Crate.created_at, Crate.packed_on).where(Crate.id == crate_id).first()
    assert made["created_at"] >= before  # TimestamptzNow, evaluated for this row, not when the INSERT was built
    assert made["packed_on"] in (today, date.today())  # DateNow, likewise


async def test_insert_row_stores_enums_by_value(contract_tables):
    by_member = await insert_row(Crate, label="member", kind=CrateKind.sealed)
    by_value = await insert_row(Crate, label="value", kind="sealed")
    by_default = await insert_row(Crate, label="default")
    rows = await Crate.select(Crate.kind).where(Crate.id.is_in([by_member, by_value, by_default])).order_by(Crate.id)
    assert exactly(rows) == exactly([{"kind": "sealed"}, {"kind": "sealed"}, {"kind": "loose"}])


@pytest.mark.parametrize("table", [*TABLES, *CONTRACT_TABLES], ids=lambda table: table.__name__)
def test_no_column_has_a_default_insert_row_would_evaluate_once(table):
    """insert_row evaluates a `Default` (TimestamptzNow, DateNow) for every row and any other default once, when
    it builds the table's INSERT; Piccolo calls a callable default for every row. No column may have one."""
    for column in table._meta.non_default_columns:
        default = column.default
        assert isinstance(default, Default) or not callable(default), f"{table.__name__}.{column._meta.name}"


PROCESSED = [  # (name, query, whether Piccolo's processing answers the very rows it is given)
    ("select-all", Crate.select(), True),
    ("select-joined-columns", Crate.select(Crate.id, Crate.shelf.name).where(Crate.id == 1), True),
    ("select-first", Crate.select(Crate.label).where(Crate.id == 1).first().query, True),
    ("update-returning", Crate.update({Crate.qty: 1}).where(Crate.id == 1).returning(Crate.qty), True),
    ("update-returning-all", Crate.update({Crate.qty: 1}).where(Crate.id == 1).returning(*Crate.all_columns()), True),
    ("select-nested", Crate.select(Crate.id, Crate.shelf.name).output(nested=True), False),
    ("select-load-json", Crate.select(Crate.id).output(load_json=True), False),
    ("select-many-to-many", Crate.select(Crate.label, Crate.tags(Tag.code, as_list=True)), False),
    ("insert", Crate.insert(Crate(label="x")).returning(Crate.qty), False),
    ("delete", Crate.delete().where(Crate.id == 1), False),
    ("count", Crate.count(), False),
]


@pytest.mark.parametrize(
    ("query", "as_they_are"),
    [(query, as_they_are) for _, query, as_they_are in PROCESSED],
    ids=[name for name, _, _ in PROCESSED],
)
async def test_rows_skip_processing_only_where_piccolo_would_leave_them_as_they_are(query, as_they_are):
    """The embedded engine answers some prepared queries' rows without `_process_results`: only those whose
    processing would answer the very rows it was given."""
    assert _rows_as_they_are(query) is as_they_are
    if as_they_are:
        rows = [{"id": 1, "label": "c1", "qty": 5, "shelf.name": "A", "created_at": T0}, {"id": 2, "label": "c2"}]
        assert await query._process_results(copy.deepcopy(rows)) == rows


async def test_the_embedded_engine_skips_processing_for_plain_selects_and_updates(contract_tables):
    if not isinstance(get_engine(), EmbeddedSQLiteEngine):
        pytest.skip("the embedded engine's shortcut")
    plain = Prepared(lambda crate_id: Crate.select(Crate.label).where(Crate.id == crate_id).first())
    nested = Prepared(lambda crate_id: Crate.select(Crate.shelf.name).where(Crate.id == crate_id).output(nested=True))
    for prepared in (plain, nested):
        await prepared.run(1)
    assert plain._plan is not None and plain._plan.plain
    assert nested._plan is not None and not nested._plan.plain
