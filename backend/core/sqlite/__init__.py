"""The embedded default's speed: Piccolo on long-lived SQLite connections, and queries built once.

- `engine`: `EmbeddedSQLiteEngine`, a `SQLiteEngine` whose statements run on a long-lived writer
  connection (transactions committed in groups, each a savepoint) and on loop readers, with WAL
  checkpoints on a thread; `sqlite_ddl` for the constraints SQLite cannot ALTER in.
- `prepared`: `Prepared` and `insert_row`, which build and compile a Piccolo query once and then
  run its SQL with new arguments, on either engine.

`backend.core.db` re-exports what the domains use: they import nothing from here directly.

Both lean on Piccolo internals, which is why Piccolo is pinned to one minor version and why
`tests/core/sqlite/test_piccolo_internals.py` checks each one's shape:

- the engine subclasses `SQLiteTransaction` (its `__init__`, `_parent`, `_committed`,
  `_rolled_back`, `_savepoint_id`/`get_savepoint_id`, the `connection` and `context` slots) and
  `SQLiteEngine` (`connection_kwargs`, `current_transaction`, and the signatures of
  `_run_in_new_connection`, `_run_in_existing_connection`, `run_querystring`, `run_ddl` and
  `transaction` it overrides), uses `dict_factory`, and replaces the converters and the datetime
  adapter Piccolo registers with `sqlite3` when `piccolo.engine.sqlite` is imported;
- the prepared layer reads `Query.querystrings`, calls `Query._process_results`, unwraps
  `First.query`, refuses other `Proxy` queries, reads `output_delegate._output` and
  `columns_delegate.selected_columns` (and looks for `M2MSelect`) to know when that processing
  would change nothing, subclasses `QueryString` over `compile_string`, binds `int` stand-ins
  that must reach `QueryString.args` as they are, and builds INSERTs from
  `Table._meta.non_default_columns`, `_meta.primary_key` (a `Serial` is SQLite's rowid),
  `column._meta.db_column_name`, `column.default` and `Default.python()`.
"""
