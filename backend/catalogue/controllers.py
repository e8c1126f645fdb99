from typing import Annotated

from litestar import Controller, Request, Response, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from backend.catalogue import service
from backend.catalogue.errors import CategoryNotFound, ImageNotFound, ProductNotFound, StoreNotFound
from backend.catalogue.schemas import (
    CategoriesOut,
    CategoryCreate,
    CategoryOut,
    ImageOut,
    InventoryOut,
    InventoryPut,
    ProductCreate,
    ProductOut,
    ProductUpdate,
    SkuOut,
    StoreProductsPage,
)
from backend.catalogue.service import CategoryRecord, ProductRecord
from backend.core import openapi
from backend.core.auth import caller
from backend.core.errors import NotFound
from backend.core.images import IMMUTABLE, UPLOAD_MEDIA_TYPES, is_digest, read_upload
from backend.core.paging import SEARCH_WORD, Cursor, Limit, PathId, before, query_id
from backend.core.responses import created
from backend.stores import service as stores
from backend.stores.auth import CurrentStaff, provide_current_staff, provide_hq_admin
from backend.stores.tables import StaffRole


def category_out(category: CategoryRecord) -> CategoryOut:
    return CategoryOut(
        id=category.id, name=category.name, parent_id=category.parent, depth=category.depth, sort=category.sort
    )


def product_out(product: ProductRecord) -> ProductOut:
    return ProductOut(
        id=product.id,
        title=product.title,
        description=product.description,
        category_id=product.category,
        status=product.status,
        images=product.images,
        skus=[
            SkuOut(
                id=sku.id,
                code=sku.code,
                spec=sku.spec,
                price_fen=sku.price_fen,
                member_price_fen=sku.member_price_fen,
                barcode=sku.barcode,
                stock_left=sku.stock_left,
            )
            for sku in product.skus
        ],
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


class CatalogueController(Controller):
    path = "/api/v1"
    tags = ["Catalogue"]

    @get("/categories", operation_id="ListCategories")
    async def categories(self) -> CategoriesOut:
        """The category tree.

        Every category, depth first: each follows its parent, siblings by `sort` then name (no token needed)."""
        return CategoriesOut(items=[category_out(c) for c in await service.category_tree()])

    @get("/categories/{category_id:int}", operation_id="GetCategory")
    async def category(self, category_id: PathId) -> CategoryOut:
        """A category.

        One category of the tree, with its parent and depth (no token needed)."""
        found = await service.get_category(category_id)
        if found is None:
            raise CategoryNotFound(category_id=category_id)
        return category_out(found)

    @get("/products/{product_id:int}", operation_id="GetProduct")
    async def product(
        self, product_id: PathId, store_id: Annotated[int | None, query_id("storeId")] = None
    ) -> ProductOut:
        """A product on sale.

        A product on sale with its SKUs (no token needed): at HQ's prices, or with `storeId` at that store's
        prices with the stock it sells now (`stockLeft`). One off sale, or a store that is not open, does not
        exist here."""
        if store_id is not None:
            store = await stores.recent_store(store_id)  # the cached read every shopper page uses
            if store is None or not store.active:
                raise ProductNotFound(product_id=product_id, store_id=store_id)
        found = await service.get_product(product_id, on_sale_only=True, store_id=store_id)
        if found is None:
            raise ProductNotFound(product_id=product_id)
        return product_out(found)

    @get("/stores/{store_id:int}/products", operation_id="ListStoreProducts")
    async def store_products(
        self,
        store_id: PathId,
        category_id: Annotated[int | None, query_id("categoryId")] = None,
        q: Annotated[str | None, QueryParameter(min_length=1, max_length=50, pattern=SEARCH_WORD)] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> StoreProductsPage:
        """Browse a store's range.

        Products on sale at the store, newest first (no token needed): within a category and those below it
        (`categoryId`), or with a word in the title (`q`); each with the SKUs the store sells now at its prices,
        member price and `stockLeft`. Read from a cache at most a second old: stock shown may lag an order by
        that much; the order itself is decided by the stock."""
        store = await stores.recent_store(store_id)
        if store is None or not store.active:
            raise StoreNotFound(store_id=store_id)
        page = await service.store_page(store_id, category_id=category_id, q=q, limit=limit, before_id=before(cursor))
        return StoreProductsPage(items=[product_out(p) for p in page.products], next_cursor=page.next_cursor)

    @get("/product-images/{name:str}", operation_id="GetProductImage", media_type="image/jpeg")
    async def image(self, name: FromPath[str]) -> Response[bytes]:
        """A product photo.

        A photo by the digest of its bytes: public, and never changes."""
        digest = name.removesuffix(".jpg")
        if not is_digest(digest) or name == digest:
            raise ImageNotFound()
        return Response(await service.image_bytes(digest), media_type="image/jpeg", headers=IMMUTABLE)


class AdminCatalogueController(Controller):
    path = "/api/v1/admin"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @post("/categories", operation_id="CreateCategory")
    async def create_category(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[CategoryCreate]
    ) -> Response[CategoryOut]:
        """Create a category.

        HQ adds a category at the top of the tree or under a parent (three levels at most); `Location` is its
        page."""
        category = await service.create_category(data)
        return created(category_out(category), f"/api/v1/categories/{category.id}")

    @post("/products", operation_id="CreateProduct")
    async def create_product(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[ProductCreate]
    ) -> Response[ProductOut]:
        """Create a product.

        HQ creates a product, on sale, with its SKUs (code, spec, price, member price, barcode): 1 to 50, each
        code unique in the chain; `Location` is its page."""
        product = await service.create_product(data)
        return created(product_out(product), f"/api/v1/products/{product.id}")

    @post(
        "/product-images",
        operation_id="UploadProductImage",
        request_max_body_size=service.IMAGE_MAX_BYTES + 64 * 1024,  # a multipart form's own bytes besides
        operation_class=openapi.operation_with(body=(*UPLOAD_MEDIA_TYPES, "multipart/form-data")),
        responses=openapi.errors(413, 415),
    )
    async def upload_image(self, request: Request, staff: NamedDependency[CurrentStaff]) -> Response[ImageOut]:
        """Upload a product photo.

        A JPEG, PNG or WebP, as the request body or as the `file` field of a multipart form: its type is read
        from its bytes, its size and pixels judged before it is decoded, and it is re-encoded (a JPEG at most
        1200 px a side); at most 8 MB. The answer's `url` goes into a product's `images`, served with a year-long
        cache."""
        image = await service.save_image(await read_upload(request), max_bytes=service.IMAGE_MAX_BYTES)
        return created(ImageOut(url=image.url, width=image.width, height=image.height), image.url)

    @patch("/products/{product_id:int}", operation_id="UpdateProduct")
    async def update_product(
        self, staff: NamedDependency[CurrentStaff], product_id: PathId, data: JSONBody[ProductUpdate]
    ) -> ProductOut:
        """Edit a product.

        HQ edits a product's title, description, photos or category, or takes it off sale (`status`) and back on."""
        return product_out(await service.update_product(product_id, data))


class StoreInventoryController(Controller):
    path = "/api/v1/admin/stores/{store_id:int}/inventory"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_current_staff)}

    @put(operation_id="PutStoreInventory")
    async def put_inventory(
        self, staff: NamedDependency[CurrentStaff], store_id: PathId, data: JSONBody[InventoryPut]
    ) -> InventoryOut:
        """Set a store's stock and prices.

        The store's stock (`onHand`), whether it sells each SKU now (`available`) and its own price (`priceFen`,
        null for HQ's), for up to 5,000 SKUs in one request, all or nothing; SKUs not named keep theirs. `onHand` is
        what the store can still sell: units held by unpaid mall orders are not in it, and come back onto it if
        those orders are not paid. HQ sets any store's, a store manager only their own (another store does not
        exist for them)."""
        staff.require_role(StaffRole.hq_admin, StaffRole.store_manager)
        staff.ensure_store(store_id)
        if await stores.get_store(store_id) is None:
            raise NotFound("No such store.", store_id=store_id)
        return InventoryOut(store_id=store_id, items=await service.put_inventory(store_id, data.items))
