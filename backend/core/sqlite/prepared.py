"""Prepared queries and single-row inserts: Piccolo's query building done once, for the hot paths.

Building and compiling a Piccolo query costs 100-300 us of Python, several times what SQLite
takes to run it. `Prepared` builds a query once per engine and runs its compiled SQL with new
arguments; `insert_row` builds a table's INSERT once. Both answer what the inline Piccolo query
answers, on either engine; on the embedded engine they hand their SQL to it directly.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any, Generic, TypeVar

from piccolo.columns import Serial
from piccolo.columns.defaults.base import Default
from piccolo.columns.m2m import M2MSelect
from piccolo.engine import engine_finder
from piccolo.engine.base import Engine
from piccolo.query.base import Query
from piccolo.query.methods.select import First, Select
from piccolo.query.methods.update import Update
from piccolo.query.proxy import Proxy
from piccolo.querystring import QueryString
from piccolo.table import Table

from backend.core.postgres import ScaleOutEngine
from backend.core.sqlite.engine import EmbeddedSQLiteEngine


@cache
def get_engine() -> Engine:
    """The process's Piccolo engine, whichever it is (`backend.core.db` exports it; it lives here, where the
    hot paths call it, so that this package needs nothing from db)."""
    # engine_finder re-resolves the conf module on every call; the engine never changes in a process.
    engine = engine_finder()
    if engine is None:
        raise RuntimeError("no Piccolo engine: PICCOLO_CONF must point at backend.piccolo_conf")
    return engine


@dataclass(frozen=True, slots=True)
class _Insert:
    template: str  # Piccolo placeholders, for any engine
    compiled: str  # the same with SQLite's `?` placeholders
    numbered: str  # the same with PostgreSQL's `$n` placeholders
    positions: dict[str, int]  # column name -> its argument
    fixed: tuple[Any, ...]  # every column's default value, _PER_ROW where it is evaluated for each row
    per_row: tuple[tuple[int, Default], ...]  # (argument, Default) for those
    primary_key: str
    by_rowid: str | None  # on SQLite, where the primary key is the rowid: the INSERT without RETURNING


_PER_ROW: Any = object()


@cache
def _insert_for(table: type[Table]) -> _Insert:
    columns = table._meta.non_default_columns
    quoted = ", ".join(f'"{column._meta.db_column_name}"' for column in columns)
    primary_key = table._meta.primary_key._meta.db_column_name
    head = f'INSERT INTO "{table._meta.tablename}" ({quoted}) VALUES'
    tail = f'RETURNING "{primary_key}"'
    per_row = tuple(
        (position, column.default) for position, column in enumerate(columns) if isinstance(column.default, Default)
    )
    fixed = tuple(
        _PER_ROW if isinstance(column.default, Default) else _plain(column.get_default_value()) for column in columns
    )
    placeholders = f"{head} ({', '.join('?' for _ in columns)})"
    return _Insert(
        template=f"{head} ({', '.join('{}' for _ in columns)}) {tail}",
        compiled=f"{placeholders} {tail}",
        numbered=f"{head} ({', '.join(f'${n}' for n in range(1, len(columns) + 1))}) {tail}",
        positions={column._meta.name: position for position, column in enumerate(columns)},
        fixed=fixed,
        per_row=per_row,
        primary_key=primary_key,
        by_rowid=placeholders if isinstance(table._meta.primary_key, Serial) else None,
    )


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


async def insert_row(table: type[Table], **values: Any) -> int:
    """INSERT one row, with Piccolo's defaults for the columns left out, and answer its primary key.

    Equivalent to `table.insert(table(**values))`, for write paths where it matters:
    Piccolo builds that statement anew for every row (about 90 us of Python), while
    this builds it once per table. JSON columns are not supported here.
    """
    insert = _insert_for(table)
    args = list(insert.fixed)
    positions = insert.positions
    for name, value in values.items():
        position = positions.get(name)
        if position is None:
            raise TypeError(f"{table.__name__} has no columns {sorted(set(values) - set(positions))}")
        args[position] = value.value if isinstance(value, Enum) else value
    for position, default in insert.per_row:
        if args[position] is _PER_ROW:
            args[position] = default.python()
    engine = get_engine()
    if isinstance(engine, EmbeddedSQLiteEngine):
        if insert.by_rowid is not None:  # SQLite keeps a RETURNING row in a table of its own first
            return await engine.insert_compiled(insert.by_rowid, args)
        rows = await engine.run_compiled(insert.compiled, args)
    elif isinstance(engine, ScaleOutEngine):
        rows = await engine.run_compiled(insert.numbered, args)
    else:
        rows = await engine.run_querystring(QueryString(insert.template, *args))
    return rows[0][insert.primary_key]


R = TypeVar("R")


class _Slot(int):
    """Stands in for the n-th argument while a prepared query is built (an int, so column arithmetic takes it)."""

    index: int

    def __new__(cls, index: int) -> "_Slot":
        slot = super().__new__(cls, 0)
        slot.index = index
        return slot


class _Compiled(QueryString):
    """SQL compiled once, with this run's arguments: what the engines run in place of a built QueryString."""

    def __init__(self, sql: str, args: list[Any]) -> None:
        super().__init__(sql.replace("{", "{{").replace("}", "}}"))
        self._sql, self._args = sql, args

    def compile_string(self, engine_type: str = "postgres") -> tuple[str, list[Any]]:
        return self._sql, self._args


@dataclass(frozen=True, slots=True)
class _Plan:
    engine: Engine
    query: Query
    sql: str
    args: tuple[Any, ...]
    slots: tuple[tuple[int, int], ...]  # (position in args, argument index)
    first: bool  # `.first()`: the first row or None
    plain: bool  # Piccolo's processing would answer the engine's rows as plain dicts: done here instead


class Prepared(Generic[R]):
    """A Piccolo query built and compiled once, then run with new arguments: for the hot paths.

    `build` takes the arguments and returns the query, exactly as one would write it inline:
    `Prepared(lambda order_id: Order.select().where(Order.id == order_id).first())`. Building
    and compiling a Piccolo query takes 100-300 us of Python, several times what SQLite takes to
    run it; a prepared query does that once per engine. Arguments may only be values bound as
    parameters (not lists for `is_in`, not None: write IS NULL and NULL assignments into `build`).
    Results are processed by the query itself, so they are what the inline query answers (on the
    embedded engine, a plain select or update answers its rows as they come, which is what that
    processing would answer).
    """

    def __init__(self, build: Callable[..., Query | First]) -> None:
        self._build = build
        self._arity = len(inspect.signature(build).parameters)
        self._plan: _Plan | None = None

    def _prepare(self, engine: Engine) -> _Plan:
        query = self._build(*(_Slot(index) for index in range(self._arity)))
        first = isinstance(query, First)
        if first:
            query = query.query
        elif isinstance(query, Proxy):
            raise TypeError(f"{type(query).__name__} cannot be prepared")
        (querystring,) = query.querystrings
        sql, args = querystring.compile_string(engine_type=engine.engine_type)
        slots = tuple((position, arg.index) for position, arg in enumerate(args) if isinstance(arg, _Slot))
        if {index for _, index in slots} != set(range(self._arity)):
            raise TypeError("every argument of a prepared query must be bound as a parameter")
        plain = isinstance(engine, EmbeddedSQLiteEngine | ScaleOutEngine) and _rows_as_they_are(query)
        self._plan = _Plan(engine, query, sql, tuple(args), slots, first, plain)
        return self._plan

    async def run(self, *values: Any) -> R:
        engine = get_engine()
        plan = self._plan if self._plan is not None and self._plan.engine is engine else self._prepare(engine)
        args = list(plan.args)
        for position, index in plan.slots:
            value = values[index]
            if value is None:
                raise TypeError("a prepared query takes no None: write NULLs into the query itself")
            args[position] = value.value if isinstance(value, Enum) else value
        if isinstance(engine, EmbeddedSQLiteEngine):
            raw = await engine.run_compiled(plan.sql, args)
            rows = raw if plan.plain else await plan.query._process_results(raw)
        elif isinstance(engine, ScaleOutEngine):
            raw = await engine.run_compiled(plan.sql, args)
            rows = [dict(row) for row in raw] if plan.plain else await plan.query._process_results(raw)
        else:
            raw = await engine.run_querystring(_Compiled(plan.sql, args))
            rows = await plan.query._process_results(raw)
        if plan.first:
            return rows[0] if rows else None
        return rows


def _rows_as_they_are(query: Query) -> bool:
    """Whether Piccolo's `_process_results` would answer the engine's rows as plain dicts.

    It makes dicts of the rows (on SQLite the engine made them so already), then for a select loads
    JSON, fills in many-to-many columns, nests or makes objects only where the query asks; an
    update's rows it keeps as they are.
    """
    if type(query) is Update:
        return True
    if type(query) is Select:
        output = query.output_delegate._output
        asks = output.load_json or output.nested or output.as_objects or output.as_list or output.as_json
        return not asks and not any(isinstance(column, M2MSelect) for column in query.columns_delegate.selected_columns)
    return False
