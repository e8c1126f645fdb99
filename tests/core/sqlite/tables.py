"""The contract tests' own tables: the column types, defaults and query shapes the domains' tables use, so
that what the contract pins holds however those tables change. Created and dropped around each test that
asks for `contract_tables` (see conftest.py); not part of the app or its migrations."""

from enum import Enum

from piccolo.columns import (
    M2M,
    BigInt,
    Boolean,
    Date,
    DoublePrecision,
    ForeignKey,
    Integer,
    LazyTableReference,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class CrateKind(str, Enum):
    loose = "loose"
    sealed = "sealed"


class Shelf(Table, tablename="contract_shelf"):
    name = Varchar(length=32, unique=True)


class Crate(Table, tablename="contract_crate"):
    shelf = ForeignKey(Shelf, null=True, on_delete=OnDelete.restrict)
    label = Varchar(length=32, unique=True)
    kind = Varchar(length=16, choices=CrateKind, default=CrateKind.loose)
    qty = BigInt(default=0)
    moves = Integer(default=0)
    weight = DoublePrecision(null=True, default=None)
    sealed = Boolean(default=False)
    note = Text(default="")
    packed_on = Date()
    created_at = Timestamptz(default=TimestamptzNow())
    checked_at = Timestamptz(null=True, default=None)
    tags = M2M(LazyTableReference("CrateTag", module_path=__name__))


class Tag(Table, tablename="contract_tag"):
    """A primary key of its own, not the rowid: insert_row answers it through RETURNING."""

    code = Varchar(length=16, primary_key=True)
    uses = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())


class CrateTag(Table, tablename="contract_crate_tag"):
    crate = ForeignKey(Crate, on_delete=OnDelete.cascade)
    tag = ForeignKey(Tag, on_delete=OnDelete.cascade)


CONTRACT_TABLES = (Shelf, Tag, Crate, CrateTag)  # in the order they can be created
