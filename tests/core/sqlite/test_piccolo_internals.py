"""Every Piccolo internal that backend/core/sqlite/ relies on still has the shape the package was written against.

Piccolo is pinned to one minor version (pyproject.toml). Before moving the pin, run this file against the
new version: each failure names the part of the package to re-check. The behaviour these internals give
is pinned by the other tests in this folder; this file pins their names, signatures and types, so that a
change is found where it happened instead of as a wrong answer somewhere else.
"""

import dataclasses
import inspect
import sqlite3
from contextvars import ContextVar
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import piccolo
import pytest
from piccolo.columns import Serial
from piccolo.columns.defaults.base import Default
from piccolo.columns.defaults.date import DateNow
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.m2m import M2MSelect
from piccolo.engine import engine_finder
from piccolo.engine import sqlite as piccolo_sqlite
from piccolo.engine.base import BaseTransaction, Engine
from piccolo.engine.exceptions import TransactionError
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory
from piccolo.query.base import Query
from piccolo.query.methods.insert import Insert
from piccolo.query.methods.select import First, Select
from piccolo.query.methods.update import Update
from piccolo.query.mixins import Output
from piccolo.query.proxy import Proxy
from piccolo.querystring import QueryString

from backend.core.db import get_engine
from backend.core.sqlite import engine as embedded
from backend.core.sqlite.engine import EmbeddedSQLiteEngine, EmbeddedTransaction
from backend.core.sqlite.prepared import _Compiled, _Slot
from tests.core.sqlite.tables import Crate, CrateKind, Tag

TRANSACTION = "EmbeddedTransaction (backend/core/sqlite/engine.py)"
ENGINE = "EmbeddedSQLiteEngine (backend/core/sqlite/engine.py)"
CONVERTERS = "the converters and the datetime adapter at the top of backend/core/sqlite/engine.py"
PREPARED = "Prepared._prepare and Prepared.run (backend/core/sqlite/prepared.py)"
COMPILED = "_Compiled (backend/core/sqlite/prepared.py)"
SLOT = "_Slot and Prepared._prepare (backend/core/sqlite/prepared.py)"
AS_THEY_ARE = "_rows_as_they_are (backend/core/sqlite/prepared.py)"
INSERT = "_insert_for and insert_row (backend/core/sqlite/prepared.py)"


def recheck(part: str, what: str) -> str:
    return f"Piccolo {piccolo.__VERSION__}: {what}; re-check {part}"


def shape(function: Any) -> list[tuple[str, str, Any]]:
    """A signature by each parameter's name, kind and default: what a caller and an override agree on."""
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(function).parameters.values()]


def methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if callable(getattr(cls, name)) and not name.startswith("__")}


def own_names(cls: type) -> set[str]:
    """What a class itself defines or declares, dunders aside."""
    names = {*vars(cls), *vars(cls).get("__annotations__", {})}
    return {name for name in names if not name.startswith("__") and name != "_abc_impl"}  # ABC's bookkeeping


@pytest.fixture
def engine(tmp_path) -> Any:
    """An embedded engine of the test's own; it opens no connection until it runs a statement."""
    engine = EmbeddedSQLiteEngine(str(tmp_path / "shape.sqlite3"))
    yield engine
    engine.close()


# SQLiteTransaction: EmbeddedTransaction is one ------------------------------------------------------------

TRANSACTION_OVERRIDES = {"begin", "commit", "rollback", "savepoint", "rollback_to"}


def test_sqlite_transaction_is_made_as_the_engine_makes_it():
    assert shape(SQLiteTransaction.__init__) == [
        ("self", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("engine", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("transaction_type", "POSITIONAL_OR_KEYWORD", TransactionType.deferred),
        ("allow_nested", "POSITIONAL_OR_KEYWORD", True),
    ], recheck(ENGINE + ".transaction", "SQLiteTransaction.__init__ takes other arguments")
    assert "__init__" not in vars(EmbeddedTransaction), recheck(TRANSACTION, "it was meant to keep Piccolo's __init__")


def test_sqlite_transaction_init_sets_the_state_the_transaction_reads(engine):
    transaction = engine.transaction(transaction_type=TransactionType.immediate)
    assert isinstance(transaction, EmbeddedTransaction)
    state = {name: getattr(transaction, name, "missing") for name in ("_parent", "_committed", "_rolled_back")}
    assert state == {"_parent": None, "_committed": False, "_rolled_back": False}, recheck(
        TRANSACTION, f"SQLiteTransaction.__init__ leaves {state}"
    )
    assert transaction.engine is engine and transaction.transaction_type is TransactionType.immediate
    assert [transaction.get_savepoint_id(), transaction.get_savepoint_id()] == [1, 2], recheck(
        TRANSACTION + ".savepoint", "get_savepoint_id no longer counts from 1"
    )
    outer = object()
    token = engine.current_transaction.set(outer)
    try:
        assert engine.transaction()._parent is outer, recheck(
            TRANSACTION + ".__aenter__/__aexit__", "a nested transaction no longer holds its parent in _parent"
        )
        with pytest.raises(TransactionError):
            engine.transaction(allow_nested=False)
    finally:
        engine.current_transaction.reset(token)


def test_sqlite_transaction_has_the_attributes_the_transaction_sets_and_reads():
    slots = set(SQLiteTransaction.__slots__)
    used = {"engine", "transaction_type", "connection", "context", "_savepoint_id", "_parent", "_committed"}
    assert used | {"_rolled_back"} <= slots, recheck(TRANSACTION, f"SQLiteTransaction's attributes are {sorted(slots)}")


def test_sqlite_transaction_has_only_the_methods_the_transaction_overrides_or_leaves_alone():
    # Anything else it gained would run, inherited, against Piccolo's aiosqlite connection instead of ours.
    assert methods(SQLiteTransaction) == TRANSACTION_OVERRIDES | {"get_savepoint_id", "get_connection"}, recheck(
        TRANSACTION, f"SQLiteTransaction's methods are now {sorted(methods(SQLiteTransaction))}"
    )
    assert set(BaseTransaction.__abstractmethods__) == {"__aenter__", "__aexit__"}, recheck(
        TRANSACTION, f"BaseTransaction now asks for {sorted(BaseTransaction.__abstractmethods__)}"
    )
    assert not EmbeddedTransaction.__abstractmethods__


@pytest.mark.parametrize("name", sorted(TRANSACTION_OVERRIDES | {"__aenter__", "__aexit__"}))
def test_the_transaction_overrides_what_piccolo_calls_with_its_signature(name):
    assert shape(getattr(EmbeddedTransaction, name)) == shape(getattr(SQLiteTransaction, name)), recheck(
        f"{TRANSACTION}.{name}",
        f"SQLiteTransaction.{name} is now {inspect.signature(getattr(SQLiteTransaction, name))}",
    )


def test_the_transaction_adds_no_name_piccolo_uses():
    added = own_names(EmbeddedTransaction) - TRANSACTION_OVERRIDES - {"engine"}  # `engine` is annotated only
    assert added == {"_group"}
    assert not added & set(dir(SQLiteTransaction)), recheck(TRANSACTION, "SQLiteTransaction now has _group")


# SQLiteEngine: EmbeddedSQLiteEngine is one ----------------------------------------------------------------

ENGINE_OVERRIDES = {
    "_run_in_new_connection",
    "_run_in_existing_connection",
    "run_querystring",
    "run_ddl",
    "transaction",
}
ENGINE_INHERITS = {  # left to Piccolo: none of them touches the engine's own connections
    "_connection_pool_warning",
    "_get_inserted_pk",
    "atomic",  # through `transaction`
    "batch",  # on an aiosqlite connection of its own, as Piccolo's engine does
    "check_version",
    "close_connection_pool",
    "create_db_file",
    "get_connection",
    "get_query_id",
    "get_version",
    "get_version_sync",
    "prep_database",
    "print_query",
    "print_response",
    "remove_db_file",
    "start_connection_pool",
    "transaction_exists",
    "transform_response_to_dicts",
}


def test_sqlite_engine_is_made_as_the_engine_makes_it():
    assert shape(SQLiteEngine.__init__) == [
        ("self", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("path", "POSITIONAL_OR_KEYWORD", "piccolo.sqlite"),
        ("log_queries", "POSITIONAL_OR_KEYWORD", False),
        ("log_responses", "POSITIONAL_OR_KEYWORD", False),
        ("connection_kwargs", "VAR_KEYWORD", inspect.Parameter.empty),
    ], recheck(ENGINE + ".__init__", "SQLiteEngine.__init__ takes other arguments")


def test_connection_kwargs_open_connections_the_engine_can_drive(engine, tmp_path):
    # sqlite3.connect(**connection_kwargs): autocommit, so that BEGIN and COMMIT are the engine's own; declared
    # types, so that the converters apply; any thread, for the reader pool and the checkpoint thread.
    assert engine.connection_kwargs == {
        "database": str(tmp_path / "shape.sqlite3"),
        "detect_types": sqlite3.PARSE_DECLTYPES | sqlite3.PARSE_COLNAMES,
        "isolation_level": None,
        "check_same_thread": False,
    }, recheck(ENGINE + "._connect", f"SQLiteEngine.connection_kwargs is now {engine.connection_kwargs}")


def test_sqlite_engine_keeps_the_current_transaction_in_a_context_variable(engine):
    assert isinstance(engine.current_transaction, ContextVar) and engine.current_transaction.get() is None, recheck(
        ENGINE + ".run_compiled/insert_compiled and " + TRANSACTION, "current_transaction is no longer a ContextVar"
    )
    assert engine.engine_type == "sqlite", recheck(ENGINE + ".run_querystring", "engine_type is not 'sqlite'")


@pytest.mark.parametrize("name", sorted(ENGINE_OVERRIDES))
def test_the_engine_overrides_what_piccolo_calls_with_its_signature(name):
    assert shape(getattr(EmbeddedSQLiteEngine, name)) == shape(getattr(SQLiteEngine, name)), recheck(
        f"{ENGINE}.{name}", f"SQLiteEngine.{name} is now {inspect.signature(getattr(SQLiteEngine, name))}"
    )


def test_sqlite_engine_has_only_the_methods_the_engine_overrides_or_leaves_alone():
    found = methods(SQLiteEngine)
    assert found == ENGINE_OVERRIDES | ENGINE_INHERITS, recheck(
        ENGINE,
        f"SQLiteEngine gained {sorted(found - ENGINE_OVERRIDES - ENGINE_INHERITS)} and lost "
        f"{sorted(ENGINE_OVERRIDES | ENGINE_INHERITS - found)}: a method it inherits unchanged may run statements "
        "on a connection the engine does not know",
    )


def test_the_engine_adds_no_name_piccolo_uses(engine):
    plain = SQLiteEngine(path=engine.path)
    added = (own_names(EmbeddedSQLiteEngine) | set(vars(engine))) - ENGINE_OVERRIDES
    clashes = added & set(dir(plain))
    assert not clashes, recheck(ENGINE, f"SQLiteEngine now has {sorted(clashes)} of its own")


def test_dict_factory_makes_the_rows_piccolo_makes():
    assert shape(dict_factory) == [
        ("cursor", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("row", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
    ], recheck(ENGINE + "._connect", "dict_factory takes other arguments")
    connection = sqlite3.connect(":memory:")
    connection.row_factory = dict_factory
    assert connection.execute("SELECT 1 AS a, 'x' AS b").fetchone() == {"a": 1, "b": "x"}
    connection.close()


def test_transaction_types_are_the_words_begin_takes():
    assert {kind.name: kind.value for kind in TransactionType} == {
        "deferred": "DEFERRED",
        "immediate": "IMMEDIATE",
        "exclusive": "EXCLUSIVE",
    }, recheck(ENGINE + ".begin", "TransactionType's values changed")


def test_piccolo_registers_its_converters_once_on_import_so_the_engines_stand():
    # The engine registers its own after importing piccolo.engine.sqlite; Piccolo must not register its again.
    assert sqlite3.converters["BOOLEAN"] is embedded._boolean, recheck(CONVERTERS, "BOOLEAN is not ours")
    assert "INTEGER" not in sqlite3.converters, recheck(CONVERTERS, "an INTEGER converter is registered again")
    assert sqlite3.converters["TIMESTAMPTZ"] is embedded._timestamptz, recheck(CONVERTERS, "TIMESTAMPTZ is not ours")
    assert sqlite3.adapters[(datetime, sqlite3.PrepareProtocol)] is embedded._utc_text, recheck(
        CONVERTERS, "sqlite3's datetime adapter is not ours"
    )
    # What the fast-path tests compare ours against.
    assert {"INTEGER", "BOOLEAN", "TIMESTAMPTZ"} <= set(piccolo_sqlite.CONVERTERS), recheck(
        CONVERTERS, f"Piccolo's CONVERTERS are now {sorted(piccolo_sqlite.CONVERTERS)}"
    )
    assert callable(piccolo_sqlite.convert_datetime_in)


async def test_piccolo_declares_the_types_the_converters_are_for(contract_tables):
    if not isinstance(get_engine(), EmbeddedSQLiteEngine):
        pytest.skip("the embedded engine's converters")
    rows = await get_engine().run_querystring(
        QueryString("SELECT name, type, pk FROM pragma_table_info('contract_crate')")
    )
    declared = {row["name"]: (row["type"], row["pk"]) for row in rows}
    expected = {"id": ("INTEGER", 1), "shelf": ("INTEGER", 0), "qty": ("INTEGER", 0), "moves": ("INTEGER", 0)}
    expected |= {"sealed": ("BOOLEAN", 0), "created_at": ("TIMESTAMPTZ", 0), "checked_at": ("TIMESTAMPTZ", 0)}
    assert {name: declared[name] for name in expected} == expected, recheck(
        CONVERTERS + f" and {INSERT} (a Serial key must be SQLite's rowid)", f"Piccolo now declares {declared}"
    )


# The query layer: what Prepared builds, compiles and processes ---------------------------------------------


def test_querystrings_are_made_and_compiled_as_compiled_ones_are():
    assert shape(QueryString.__init__)[:3] == [
        ("self", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("template", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("args", "VAR_POSITIONAL", inspect.Parameter.empty),
    ], recheck(COMPILED, "QueryString.__init__ takes other arguments")
    assert (
        shape(_Compiled.compile_string)
        == shape(QueryString.compile_string)
        == [
            ("self", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
            ("engine_type", "POSITIONAL_OR_KEYWORD", "postgres"),
        ]
    ), recheck(COMPILED, f"QueryString.compile_string is now {inspect.signature(QueryString.compile_string)}")
    assert QueryString("a = {} AND b = {}", 1, "x").compile_string(engine_type="sqlite") == (
        "a = ? AND b = ?",
        [1, "x"],
    )
    compiled = _Compiled("SELECT a FROM t WHERE a = ?", [7])
    assert compiled.compile_string(engine_type="sqlite") == ("SELECT a FROM t WHERE a = ?", [7])


async def test_the_postgres_engine_runs_what_compile_string_answers():
    # On PostgreSQL a prepared query is handed over as a _Compiled querystring, so the engine must run what its
    # compile_string answers and read nothing else of it.
    ran: list[tuple[str, tuple[Any, ...]]] = []

    class Connection:
        async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
            ran.append((query, args))
            return []

    current: ContextVar[Any] = ContextVar("current")
    current.set(SimpleNamespace(connection=Connection()))
    engine = SimpleNamespace(
        engine_type="postgres", log_queries=False, log_responses=False, current_transaction=current, pool=None
    )
    engine.get_query_id = lambda: 1
    await PostgresEngine.run_querystring(engine, _Compiled("SELECT a FROM t WHERE a = $1", [7]))
    assert ran == [("SELECT a FROM t WHERE a = $1", (7,))], recheck(
        COMPILED, "PostgresEngine.run_querystring no longer runs what compile_string answers"
    )


def _compiled(query: Any) -> tuple[str, list[Any]]:
    (querystring,) = query.querystrings
    return querystring.compile_string(engine_type=get_engine().engine_type)


def test_a_bound_value_reaches_the_compiled_arguments_as_it_is():
    first, second = _Slot(0), _Slot(1)
    queries = {
        "where": Crate.select().where((Crate.id == first) & (Crate.kind == second)),
        "arithmetic": Crate.update({Crate.qty: Crate.qty + first}).where(Crate.qty >= second),
        "insert": Crate.insert(Crate(label=first, qty=second))
        .on_conflict(target=Crate.label, action="DO UPDATE", values=[Crate.qty])
        .returning(Crate.qty),
    }
    for name, query in queries.items():
        _, args = _compiled(query)
        assert sum(arg is first for arg in args) == 1 and sum(arg is second for arg in args) == 1, recheck(
            SLOT, f"a {name} query's stand-ins no longer reach its arguments as they are: {args}"
        )


def test_a_query_compiles_to_one_querystring():
    queries = {
        "select": Crate.select().where(Crate.id == 1),
        "first": Crate.select(Crate.label).where(Crate.id == 1).first().query,
        "update": Crate.update({Crate.qty: 1}).where(Crate.id == 1).returning(Crate.qty),
        "insert": Crate.insert(Crate(label="x"))
        .on_conflict(target=Crate.label, action="DO UPDATE", values=[Crate.qty])
        .returning(Crate.qty),
    }
    assert isinstance(inspect.getattr_static(Query, "querystrings"), property)
    for name, query in queries.items():
        querystrings = query.querystrings
        assert len(querystrings) == 1 and isinstance(querystrings[0], QueryString), recheck(
            PREPARED, f"a {name} query now compiles to {querystrings!r}"
        )


def test_process_results_is_the_coroutine_prepared_awaits():
    assert inspect.iscoroutinefunction(Query._process_results), recheck(PREPARED, "_process_results is not async")
    assert shape(Query._process_results) == [
        ("self", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("results", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
    ], recheck(PREPARED, f"_process_results is now {inspect.signature(Query._process_results)}")


def test_first_wraps_the_select_it_limits():
    select = Crate.select(Crate.label).where(Crate.id == 1)
    first = select.first()
    assert isinstance(first, First) and issubclass(First, Proxy), recheck(PREPARED, "select().first() is no First")
    assert first.query is select and isinstance(first.query, Select), recheck(PREPARED, "First.query is not the select")
    assert _compiled(first.query)[0].rstrip().endswith("LIMIT 1"), recheck(PREPARED, "first() no longer limits to 1")


@pytest.mark.parametrize("output", [{"as_list": True}, {"as_json": True}], ids=["as-list", "as-json"])
def test_the_outputs_prepared_refuses_are_proxies(output):
    query = Crate.select(Crate.label).output(**output)
    assert isinstance(query, Proxy) and not isinstance(query, First), recheck(
        PREPARED, f"output({output}) answers a {type(query).__name__}"
    )


def test_a_selects_output_options_are_the_ones_rows_as_they_are_reads():
    output = Crate.select().output_delegate._output
    assert isinstance(output, Output) and dataclasses.is_dataclass(Output)
    fields = {field.name: field.default for field in dataclasses.fields(Output)}
    assert fields == dict.fromkeys(["as_json", "as_list", "as_objects", "load_json", "nested"], False), recheck(
        AS_THEY_ARE, f"a select's output options are now {fields}"
    )


def test_a_selects_columns_show_a_many_to_many_select():
    assert Crate.select().columns_delegate.selected_columns == []
    selected = Crate.select(Crate.label, Crate.tags(Tag.code, as_list=True)).columns_delegate.selected_columns
    assert [type(column) for column in selected] == [type(Crate.label), M2MSelect], recheck(
        AS_THEY_ARE, f"a select of a many-to-many column now selects {selected}"
    )


def test_process_results_leaves_selects_and_updates_where_rows_as_they_are_says():
    # _process_results transforms the engine's rows, lets an insert see them, loads JSON, handles the query's
    # response (a select's many-to-many columns and nesting) and makes objects: for an update, none of it.
    update = Crate.update({Crate.qty: 1}).where(Crate.id == 1)
    assert not hasattr(update, "output_delegate") and not hasattr(update, "_raw_response_callback"), recheck(
        AS_THEY_ARE, "an update's results are now processed"
    )
    assert Update.response_handler is Query.response_handler, recheck(AS_THEY_ARE, "Update has a response_handler")
    assert not hasattr(Select, "_raw_response_callback") and hasattr(Insert, "_raw_response_callback"), recheck(
        AS_THEY_ARE, "which queries see their raw rows changed"
    )
    assert SQLiteEngine.transform_response_to_dicts is Engine.transform_response_to_dicts, recheck(
        AS_THEY_ARE, "the SQLite engine now transforms its rows"
    )


# Tables and columns: what insert_row builds its INSERT from --------------------------------------------------


def test_a_tables_meta_holds_what_insert_for_reads():
    declared = ["shelf", "label", "kind", "qty", "moves", "weight", "sealed", "note", "packed_on"]
    declared += ["created_at", "checked_at"]
    assert [column._meta.name for column in Crate._meta.non_default_columns] == declared, recheck(
        INSERT, "non_default_columns no longer lists the declared columns, and only them"
    )
    assert [column._meta.db_column_name for column in Crate._meta.non_default_columns] == declared
    assert Crate._meta.tablename == "contract_crate"
    primary_key = Crate._meta.primary_key
    assert isinstance(primary_key, Serial) and primary_key is Crate.id, recheck(INSERT, "the implicit key is no Serial")
    assert primary_key._meta.db_column_name == "id"
    assert Tag._meta.primary_key is Tag.code and Tag.code in Tag._meta.non_default_columns, recheck(
        INSERT, "a declared primary key is no longer one of the non-default columns"
    )


def test_a_columns_default_is_what_insert_for_evaluates():
    assert isinstance(Crate.created_at.default, TimestamptzNow) and isinstance(Crate.packed_on.default, DateNow), (
        recheck(INSERT, "a column keeps its default elsewhere than in `default`")
    )
    assert "python" in Default.__abstractmethods__, recheck(INSERT, "Default.python is gone")
    now, today = TimestamptzNow().python(), DateNow().python()
    assert isinstance(now, datetime) and now.utcoffset() == timedelta(0) and type(today) is date
    assert Crate.kind.default is CrateKind.loose and Crate.kind.get_default_value() == "loose", recheck(
        INSERT + " (_plain)", "an enum default is no longer kept as the member"
    )
    assert Crate.qty.get_default_value() == 0 and Crate.checked_at.get_default_value() is None
    made = Crate(label="x")  # what Table.insert(Table(...)) writes, and insert_row matches
    assert isinstance(made.created_at, datetime) and type(made.packed_on) is date, recheck(
        INSERT, "a table row no longer evaluates Default.python() when it is made"
    )


def test_the_engine_prepared_queries_find_is_piccolos():
    assert engine_finder() is get_engine(), recheck(PREPARED + " (get_engine)", "engine_finder finds another engine")
