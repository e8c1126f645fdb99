"""The chain's catalogue: a category tree, products with their photos and SKUs at HQ's prices, each store's
stock and own prices, and the pages a shopper browses a store's range by."""

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from PIL import Image

from backend.audit import service as audit
from backend.catalogue.errors import (
    CategoryTooDeep,
    ImageNotFound,
    ProductNotFound,
    SkuCodeTaken,
    SkusInvalid,
    UnknownCategory,
    UnknownImages,
    UnknownSkus,
)
from backend.catalogue.schemas import CategoryCreate, InventoryItem, ProductCreate, ProductUpdate
from backend.catalogue.tables import MAX_DEPTH, Category, Product, ProductImage, ProductStatus, Sku, StoreInventory
from backend.core.clock import utcnow
from backend.core.db import contains, is_unique_violation, write_transaction
from backend.core.images import decode_upload, digest_of, jpeg
from backend.core.recent import Recent
from backend.core.schema import given

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
    images: list[str]  # their URLs, in the order shown
    skus: list[SkuRecord]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any], skus: list[SkuRecord]) -> "ProductRecord":
        return cls(
            **{**row, "status": ProductStatus(row["status"]), "images": [image_url(d) for d in row["images"] or ()]},
            skus=skus,
        )


@dataclass(frozen=True, slots=True)
class ImageRecord:
    url: str
    width: int
    height: int


IMAGE_PATH = "/api/v1/product-images/"
IMAGE_SIDE = 1200  # a product photo is kept at most this wide and high
IMAGE_MAX_BYTES = 8 * 1024 * 1024  # an upload: a phone's full-size photo


def image_url(digest: str) -> str:
    return f"{IMAGE_PATH}{digest}.jpg"


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
        await audit.record("category.create", "category", rows[0]["id"], after=given(data))
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
            images = await _image_digests(data.images)
            rows = await Product.insert(
                Product(
                    title=data.title,
                    description=data.description,
                    category=data.category_id,
                    status=ProductStatus.on_sale,
                    images=images,
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
            await audit.record("product.create", "product", product_id, after=given(data))
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
        if data.images is not msgspec.UNSET:
            changes[Product.images] = await _image_digests(data.images)
        values = {column._meta.name: value for column, value in changes.items()}
        if await audit.update_row(Product, product_id, values, action="product.update", entity="product") is None:
            raise ProductNotFound(product_id=product_id)
        if changes:
            await Product.update({Product.updated_at: utcnow()}).where(Product.id == product_id)
    _pages.forget()
    logger.info("product updated", extra={"product_id": product_id, "fields": len(changes)})
    product = await get_product(product_id)
    assert product is not None
    return product


# A product's own columns, as ProductRecord.of takes them.
_PRODUCT_COLUMNS = (
    Product.id,
    Product.title,
    Product.description,
    Product.category,
    Product.status,
    Product.images,
    Product.created_at,
    Product.updated_at,
)


async def get_product(
    product_id: int, *, on_sale_only: bool = False, store_id: int | None = None
) -> ProductRecord | None:
    """The product with its SKUs; for a store, each at the store's price with the stock it sells now."""
    query = Product.select(*_PRODUCT_COLUMNS).where(Product.id == product_id)
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
    return ProductRecord.of(row, records)


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


async def _image_digests(urls: list[str]) -> list[str]:
    """The digests of images uploaded here, from their URLs; any other is 422, naming it."""
    digests = [url.removeprefix(IMAGE_PATH).removesuffix(".jpg") for url in urls]
    known = set()
    if digests:
        known = {
            r["digest"]
            for r in await ProductImage.select(ProductImage.digest).where(ProductImage.digest.is_in(digests))
        }
    if unknown := [url for url, digest in zip(urls, digests, strict=True) if digest not in known]:
        raise UnknownImages(details={"images": unknown})
    return digests


# Product photos --------------------------------------------------------------------------------------


def reencode_photo(data: bytes, *, max_bytes: int) -> tuple[bytes, int, int]:
    """A JPEG of the upload at most IMAGE_SIDE a side, its proportions kept; with its width and height."""
    image = decode_upload(data, max_bytes=max_bytes)
    image.thumbnail((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
    return jpeg(image, quality=85), image.width, image.height


async def save_image(data: bytes, *, max_bytes: int) -> ImageRecord:
    """Check and re-encode an upload and keep it under the digest of its bytes (the same photo twice is one)."""
    image, width, height = await asyncio.to_thread(reencode_photo, data, max_bytes=max_bytes)
    digest = digest_of(image)
    async with write_transaction():
        await ProductImage.insert(
            ProductImage(digest=digest, image=image, width=width, height=height, created_at=utcnow())
        ).on_conflict(target=ProductImage.digest, action="DO NOTHING")
        await audit.record("product_image.upload", "product_image", digest, after={"width": width, "height": height})
    logger.info("product image saved", extra={"digest": digest, "bytes": len(image)})
    return ImageRecord(url=image_url(digest), width=width, height=height)


async def image_bytes(digest: str) -> bytes:
    row = await ProductImage.select(ProductImage.image).where(ProductImage.digest == digest).first()
    if row is None:
        raise ImageNotFound()
    return bytes(row["image"])


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
        # What was set, not each row's before and after: a store's whole range is 5,000 rows in one request.
        await audit.record(
            "inventory.put",
            "store_inventory",
            store_id,
            after={"items": len(items), "sku_ids": sku_ids},
            store_id=store_id,
        )
    _pages.forget()
    logger.info("store inventory set", extra={"store_id": store_id, "items": len(items)})
    return len(items)


# Browsing a store's range ----------------------------------------------------------------------------

# A store's pages as read at most PAGE_SECONDS ago, in this process: a change of price, stock or product made
# here forgets them at once, one made in another process is seen within PAGE_SECONDS. Stock shown may be that
# old; an order is decided by the guarded update of the stock itself.
PAGE_SECONDS = 1.0
_pages: Recent[tuple, "StorePage"] = Recent(PAGE_SECONDS, size=500, coalesce=True)  # a page is up to 100 products


@dataclass(frozen=True, slots=True)
class StorePage:
    products: list[ProductRecord]
    next_cursor: str | None


async def _category_and_below(category_id: int) -> list[int]:
    ids, level = [category_id], [category_id]
    for _ in range(MAX_DEPTH - 1):
        level = [r["id"] for r in await Category.select(Category.id).where(Category.parent.is_in(level))]
        if not level:
            break
        ids += level
    return ids


async def store_page(
    store_id: int, *, category_id: int | None, q: str | None, limit: int, before_id: int | None
) -> StorePage:
    """Products on sale at the store (a SKU of theirs it sells now), newest first, each with the SKUs the store
    sells at its prices and stock; within a category and those below it, or with `q` in the title."""
    key = (store_id, category_id, q, limit, before_id)
    return await _pages.read(key, lambda: _store_page(store_id, category_id, q, limit, before_id))


async def _store_page(
    store_id: int, category_id: int | None, q: str | None, limit: int, before_id: int | None
) -> StorePage:
    sold_here = StoreInventory.select(StoreInventory.sku).where(
        (StoreInventory.store == store_id) & StoreInventory.available.eq(True)
    )
    query = Product.select(*_PRODUCT_COLUMNS).where(
        (Product.status == ProductStatus.on_sale)
        & Product.id.is_in(Sku.select(Sku.product).where(Sku.id.is_in(sold_here)))
    )
    if category_id is not None:
        query = query.where(Product.category.is_in(await _category_and_below(category_id)))
    if q is not None:
        query = query.where(contains(Product.title, q))
    if before_id is not None:
        query = query.where(Product.id < before_id)
    rows = await query.order_by(Product.id, ascending=False).limit(limit + 1)
    rows, more = rows[:limit], len(rows) > limit
    skus: dict[int, list[SkuRecord]] = {row["id"]: [] for row in rows}
    if rows:
        for sku in await (
            StoreInventory.select(
                StoreInventory.sku.id.as_alias("id"),
                StoreInventory.sku.product.as_alias("product"),
                StoreInventory.sku.code.as_alias("code"),
                StoreInventory.sku.spec.as_alias("spec"),
                StoreInventory.sku.price_fen.as_alias("hq_price_fen"),
                StoreInventory.sku.member_price_fen.as_alias("member_price_fen"),
                StoreInventory.sku.barcode.as_alias("barcode"),
                StoreInventory.price_fen,
                StoreInventory.on_hand,
            )
            .where(
                (StoreInventory.store == store_id)
                & StoreInventory.available.eq(True)
                & StoreInventory.sku.product.is_in(list(skus))
            )
            .order_by(StoreInventory.sku)
        ):
            price = sku["price_fen"] if sku["price_fen"] is not None else sku["hq_price_fen"]
            skus[sku["product"]].append(
                SkuRecord(
                    id=sku["id"],
                    code=sku["code"],
                    spec=sku["spec"],
                    price_fen=price,
                    member_price_fen=None if sku["member_price_fen"] is None else min(sku["member_price_fen"], price),
                    barcode=sku["barcode"],
                    stock_left=sku["on_hand"],
                )
            )
    products = [ProductRecord.of(row, skus[row["id"]]) for row in rows]
    return StorePage(products, str(rows[-1]["id"]) if more else None)
