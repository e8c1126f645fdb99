from datetime import datetime
from typing import Annotated

import msgspec

from backend.catalogue.tables import ProductStatus
from backend.core.paging import Id
from backend.core.schema import Struct

MAX_PRICE_FEN = 100_000_000  # 100万元: a price past it is a typo
SkuCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_.-]{1,64}$")]
Barcode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{0,32}$")]
PriceFen = Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE_FEN)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
# A photo uploaded here, by the URL its upload answered.
ImageUrl = Annotated[str, msgspec.Meta(pattern=r"^/api/v1/product-images/[0-9a-f]{64}\.jpg$")]
Images = Annotated[list[ImageUrl], msgspec.Meta(max_length=9)]


class CategoryCreate(Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    parent_id: Id | None = None
    sort: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0


class CategoryOut(Struct):
    id: int
    name: str
    parent_id: int | None
    depth: int
    sort: int


class CategoriesOut(Struct):
    """The tree, depth first: each category follows its parent, siblings by `sort`, then name."""

    items: list[CategoryOut]


class SkuCreate(Struct):
    code: SkuCode
    spec: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    price_fen: PriceFen
    member_price_fen: PriceFen | None = None
    barcode: Barcode = ""


class ProductCreate(Struct):
    title: Title
    skus: Annotated[list[SkuCreate], msgspec.Meta(min_length=1, max_length=50)]
    description: Description = ""
    category_id: Id | None = None
    images: Images = []


class ProductUpdate(Struct):
    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    category_id: Id | None | msgspec.UnsetType = msgspec.UNSET
    status: ProductStatus | msgspec.UnsetType = msgspec.UNSET
    images: Images | msgspec.UnsetType = msgspec.UNSET


MAX_INVENTORY_ITEMS = 5_000  # a store's whole range in one request


class InventoryItem(Struct):
    sku_id: Id
    on_hand: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
    available: bool = True
    price_fen: PriceFen | None = None  # the store's own price; null: HQ's


class InventoryPut(Struct):
    items: Annotated[list[InventoryItem], msgspec.Meta(min_length=1, max_length=MAX_INVENTORY_ITEMS)]


class InventoryOut(Struct):
    store_id: int
    items: int  # rows written, new or updated


class SkuOut(Struct):
    id: int
    code: str
    spec: str
    price_fen: int  # at the store when one was named, else HQ's
    member_price_fen: int | None
    barcode: str
    stock_left: int | None = None  # at the store when one was named; 0 where it does not sell the SKU now


class ProductOut(Struct):
    id: int
    title: str
    description: str
    category_id: int | None
    status: ProductStatus
    images: list[str]  # URLs served here, the first the product's main photo
    skus: list[SkuOut]
    created_at: datetime
    updated_at: datetime


class StoreProductsPage(Struct):
    """Products on sale at the store, newest first; each lists only the SKUs the store sells now."""

    items: list[ProductOut]
    next_cursor: str | None


class ImageOut(Struct):
    url: str  # for a product's `images`; never changes what it shows
    width: int
    height: int
