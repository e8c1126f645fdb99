from enum import Enum

from piccolo.columns import Array, BigInt, Boolean, Bytea, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.stores.tables import Store

MAX_DEPTH = 3  # 生鲜 > 水果 > 榴莲


class ProductStatus(str, Enum):
    on_sale = "on_sale"
    off_sale = "off_sale"


class Category(Table, tablename="catalogue_category"):
    """A node of the chain's category tree; `depth` is 1 at the top."""

    name = Varchar(length=50)
    # NO ACTION, checked at the end of a statement: a parent with children stays, a whole tree can go at once
    parent = ForeignKey("self", null=True, on_delete=OnDelete.no_action, index=True)
    depth = Integer(default=1)
    sort = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())

    category_depth_in_range = Check((depth >= 1) & (depth <= MAX_DEPTH))


class Product(Table, tablename="catalogue_product"):
    title = Varchar(length=100)
    description = Text(default="")
    category = ForeignKey(Category, null=True, on_delete=OnDelete.restrict, index=True)
    status = Varchar(length=16, choices=ProductStatus, default=ProductStatus.on_sale)
    images = Array(base_column=Varchar(length=64), default=[])  # digests of ProductImage rows, in order shown
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class ProductImage(Table, tablename="catalogue_image"):
    """A product photo HQ uploaded, re-encoded by us (a JPEG at most 1200 px a side), named by its digest.

    Kept in the database so that every worker on every host serves the same bytes under the same name.
    """

    digest = Varchar(length=64, unique=True)
    image = Bytea()
    width = Integer()
    height = Integer()
    created_at = Timestamptz()


class Sku(Table, tablename="catalogue_sku"):
    """What is sold and counted: a product in one spec ("1 kg", "红色 L"), at HQ's price."""

    product = ForeignKey(Product, null=False, on_delete=OnDelete.restrict, index=True)
    code = Varchar(length=64, unique=True)
    spec = Varchar(length=50)
    price_fen = BigInt()
    member_price_fen = BigInt(null=True, default=None)
    barcode = Varchar(length=32, default="")
    created_at = Timestamptz(default=TimestamptzNow())

    sku_prices_sane = Check(
        '"price_fen" >= 0 AND ("member_price_fen" IS NULL OR ("member_price_fen" >= 0 '
        'AND "member_price_fen" <= "price_fen"))'
    )


class StoreInventory(Table, tablename="catalogue_store_inventory"):
    """A store's stock of a SKU, whether it sells it now, and its own price (HQ's when null)."""

    store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict)
    sku = ForeignKey(Sku, null=False, on_delete=OnDelete.restrict, index=True)
    on_hand = Integer(default=0)
    available = Boolean(default=True)
    price_fen = BigInt(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())

    one_row_per_store_and_sku = Unique([store, sku])
    inventory_sane = Check('"on_hand" >= 0 AND ("price_fen" IS NULL OR "price_fen" >= 0)')
