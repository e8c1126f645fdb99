from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import BigInt
from piccolo.columns.column_types import Boolean
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import Serial
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check
from piccolo.constraints import Unique
from piccolo.table import Table


class Sku(Table, tablename="catalogue_sku", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name="id",
        secret=False,
    )


class Store(Table, tablename="store", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name="id",
        secret=False,
    )


ID = "2026-12-01T20:20:17:430360"
VERSION = "1.38.0"
DESCRIPTION = ""


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="backend", description=DESCRIPTION
    )

    manager.add_table(
        class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        schema=None,
        columns=None,
    )

    manager.add_column(
        table_class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        column_name="store",
        db_column_name="store",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Store,
            "on_delete": OnDelete.restrict,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        column_name="sku",
        db_column_name="sku",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Sku,
            "on_delete": OnDelete.restrict,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        column_name="on_hand",
        db_column_name="on_hand",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        column_name="available",
        db_column_name="available",
        column_class_name="Boolean",
        column_class=Boolean,
        params={
            "default": True,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        column_name="price_fen",
        db_column_name="price_fen",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        constraint_name="one_row_per_store_and_sku",
        constraint_class=Unique,
        params={"columns": ["store", "sku"], "nulls_distinct": True},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="StoreInventory",
        tablename="catalogue_store_inventory",
        constraint_name="inventory_sane",
        constraint_class=Check,
        params={
            "condition": '"on_hand" >= 0 AND ("price_fen" IS NULL OR "price_fen" >= 0)'
        },
        schema=None,
    )

    return manager
