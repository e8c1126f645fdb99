"""The chain's catalogue: a category tree, products and their SKUs at HQ's prices."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from backend.catalogue.errors import (
    CategoryTooDeep,
    ProductNotFound,
    SkuCodeTaken,
    SkusInvalid,
    UnknownCategory,
    UnknownSkus,
)
from backend.catalogue.schemas import CategoryCreate, InventoryItem, ProductCreate, ProductUpdate
from backend.catalogue.tables import MAX_DEPTH, Category, Product, ProductStatus, Sku, StoreInventory
from backend.core.clock import utcnow
from backend.core.db import is_unique_violation, write_transaction

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class CategoryRecord:
    id: int
    name: str
    parent: int | None
    depth: int
    sort: int


@dataclass(slots=True)
class SkuRecord:
    id: int
    code: str
    spec: str
    price_fen: int
    member_price_fen: int | None
    barcode: str
    stock_left: int | None = None  # at the store the product was read for


@dataclass(slots=True)
class ProductRecord:
    id: int
    title: str
    description: str
    category: int | None
    status: ProductStatus
    skus: list[SkuRecord]
    created_at: datetime
    updated_at: datetime


# Categories ------------------------------------------------------------------------------------------

_CATEGORY_COLUMNS = (Category.id, Category.name, Category.parent, Category.depth, Category.sort)


async def create_category(data: CategoryCreate) -> CategoryRecord:
    async with write_transaction():
        depth = 1
        if data.parent_id is not None:
            parent = await get_category(data.parent_id)
            if parent is None:
                raise UnknownCategory(parent_id=data.parent_id)
            if parent.depth >= MAX_DEPTH:
                raise CategoryTooDeep(details={"maxDepth": MAX_DEPTH}, parent_id=data.parent_id)
            depth = parent.depth + 1
        rows = await Category.insert(Category(name=data.name, parent=data.parent_id, depth=depth, sort=data.sort))
    logger.info("category created", extra={"category_id": rows[0]["id"]})
    category = await get_category(rows[0]["id"])
    assert category is not None
    return category


async def get_category(category_id: int) -> CategoryRecord | None:
    row = await Category.select(*_CATEGORY_COLUMNS).where(Category.id == category_id).first()
    return CategoryRecord(**row) if row is not None else None


async def category_tree() -> list[CategoryRecord]:
    """Every category, depth first: each after its parent, siblings by sort, then name, then id."""
    rows = [CategoryRecord(**row) for row in await Category.select(*_CATEGORY_COLUMNS)]
    children: dict[int | None, list[CategoryRecord]] = {}
    for row in sorted(rows, key=lambda r: (r.sort, r.name, r.id)):
        children.setdefault(row.parent, []).append(row)
    ordered: list[CategoryRecord] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        node = stack.pop()
        ordered.append(node)
        stack.extend(reversed(children.get(node.id, [])))
    return ordered


# Products --------------------------------------------------------------------------------------------


async def create_product(data: ProductCreate) -> ProductRecord:
    _check_skus(data)
    now = utcnow()
    try:
        async with write_transaction():
            await _ensure_category(data.category_id)
            rows = await Product.insert(
                Product(
                    title=data.title,
                    description=data.description,
                    category=data.category_id,
                    status=ProductStatus.on_sale,
                    created_at=now,
                    updated_at=now,
                )
            )
            product_id = rows[0]["id"]
            await Sku.insert(
                *(
                    Sku(
                        product=product_id,
                        code=sku.code,
                        spec=sku.spec,
                        price_fen=sku.price_fen,
                        member_price_fen=sku.member_price_fen,
                        barcode=sku.barcode,
                        created_at=now,
                    )
                    for sku in data.skus
                )
            )
    except Exception as error:
        if is_unique_violation(error):
            codes = [sku.code for sku in data.skus]
            taken = [row["code"] for row in await Sku.select(Sku.code).where(Sku.code.is_in(codes))]
            raise SkuCodeTaken(details={"codes": sorted(taken)}) from None
        raise
    logger.info("product created", extra={"product_id": product_id, "skus": len(data.skus)})
    product = await get_product(product_id)
    assert product is not None
    return product


async def update_product(product_id: int, data: ProductUpdate) -> ProductRecord:
    changes: dict[Any, Any] = {}
    if data.title is not msgspec.UNSET:
        changes[Product.title] = data.title
    if data.description is not msgspec.UNSET:
        changes[Product.description] = data.description
    if data.status is not msgspec.UNSET:
        changes[Product.status] = data.status
    async with write_transaction():
        if data.category_id is not msgspec.UNSET:
            await _ensure_category(data.category_id)
            changes[Product.category] = data.category_id
        if changes:
            changes[Product.updated_at] = utcnow()
            updated = await Product.update(changes).where(Product.id == product_id).returning(Product.id)
        else:
            updated = await Product.select(Product.id).where(Product.id == product_id)
        if not updated:
            raise ProductNotFound(product_id=product_id)
    logger.info("product updated", extra={"product_id": product_id, "fields": len(changes)})
    product = await get_product(product_id)
    assert product is not None
    return product


async def get_product(
    product_id: int, *, on_sale_only: bool = False, store_id: int | None = None
) -> ProductRecord | None:
    """The product with its SKUs; for a store, each at the store's price with the stock it sells now."""
    query = Product.select(
        Product.id,
        Product.title,
        Product.description,
        Product.category,
        Product.status,
        Product.created_at,
        Product.updated_at,
    ).where(Product.id == product_id)
    if on_sale_only:
        query = query.where(Product.status == ProductStatus.on_sale)
    row = await query.first()
    if row is None:
        return None
    skus = (
        await Sku.select(Sku.id, Sku.code, Sku.spec, Sku.price_fen, Sku.member_price_fen, Sku.barcode)
        .where(Sku.product == product_id)
        .order_by(Sku.id)
    )
    records = [SkuRecord(**sku) for sku in skus]
    if store_id is not None:
        stocked = {
            r["sku"]: r
            for r in await StoreInventory.select(
                StoreInventory.sku, StoreInventory.on_hand, StoreInventory.available, StoreInventory.price_fen
            ).where((StoreInventory.store == store_id) & StoreInventory.sku.is_in([s.id for s in records] or [0]))
        }
        for sku in records:
            held = stocked.get(sku.id)
            sku.stock_left = held["on_hand"] if held is not None and held["available"] else 0
            if held is not None and held["price_fen"] is not None:
                sku.price_fen = held["price_fen"]
    return ProductRecord(**{**row, "status": ProductStatus(row["status"])}, skus=records)


def _check_skus(data: ProductCreate) -> None:
    problems: dict[str, str] = {}
    codes = [sku.code for sku in data.skus]
    if len(set(codes)) != len(codes):
        problems["skus"] = "each SKU code once"
    if any(sku.member_price_fen is not None and sku.member_price_fen > sku.price_fen for sku in data.skus):
        problems["memberPriceFen"] = "at most the price"
    if problems:
        raise SkusInvalid(details=problems)


async def _ensure_category(category_id: int | None) -> None:
    if category_id is not None and not await Category.exists().where(Category.id == category_id):
        raise UnknownCategory(category_id=category_id)


# Store inventory -------------------------------------------------------------------------------------

_INVENTORY_BATCH = 1_000  # rows a statement: six parameters each, under either engine's limit


async def put_inventory(store_id: int, items: list[InventoryItem]) -> int:
    """Set the store's stock, availability and own price of each SKU named (other SKUs keep theirs): one
    transaction, all or nothing. Answers the rows written."""
    sku_ids = [item.sku_id for item in items]
    if len(set(sku_ids)) != len(sku_ids):
        raise UnknownSkus(details={"skuIds": "each SKU once"})
    now = utcnow()
    async with write_transaction():
        known = {row["id"] for row in await Sku.select(Sku.id).where(Sku.id.is_in(sku_ids))}
        if missing := sorted(set(sku_ids) - known):
            raise UnknownSkus(details={"skuIds": missing[:50]}, store_id=store_id)
        for start in range(0, len(items), _INVENTORY_BATCH):
            batch = items[start : start + _INVENTORY_BATCH]
            await StoreInventory.insert(
                *(
                    StoreInventory(
                        store=store_id,
                        sku=item.sku_id,
                        on_hand=item.on_hand,
                        available=item.available,
                        price_fen=item.price_fen,
                        updated_at=now,
                    )
                    for item in batch
                )
            ).on_conflict(
                target=(StoreInventory.store, StoreInventory.sku),
                action="DO UPDATE",
                values=[
                    StoreInventory.on_hand,
                    StoreInventory.available,
                    StoreInventory.price_fen,
                    StoreInventory.updated_at,
                ],
            )
    logger.info("store inventory set", extra={"store_id": store_id, "items": len(items)})
    return len(items)
