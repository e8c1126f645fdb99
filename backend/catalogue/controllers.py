from litestar import Controller, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from backend.catalogue import service
from backend.catalogue.errors import CategoryNotFound, ProductNotFound
from backend.catalogue.schemas import (
    CategoriesOut,
    CategoryCreate,
    CategoryOut,
    ProductCreate,
    ProductOut,
    ProductUpdate,
    SkuOut,
)
from backend.catalogue.service import CategoryRecord, ProductRecord
from backend.core.auth import caller
from backend.core.paging import PathId
from backend.core.responses import created
from backend.stores.auth import CurrentStaff, provide_hq_admin


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
        skus=[
            SkuOut(
                id=sku.id,
                code=sku.code,
                spec=sku.spec,
                price_fen=sku.price_fen,
                member_price_fen=sku.member_price_fen,
                barcode=sku.barcode,
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
    async def product(self, product_id: PathId) -> ProductOut:
        """A product on sale.

        A product on sale with its SKUs at HQ's prices (no token needed); one off sale does not exist here."""
        found = await service.get_product(product_id, on_sale_only=True)
        if found is None:
            raise ProductNotFound(product_id=product_id)
        return product_out(found)


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

    @patch("/products/{product_id:int}", operation_id="UpdateProduct")
    async def update_product(
        self, staff: NamedDependency[CurrentStaff], product_id: PathId, data: JSONBody[ProductUpdate]
    ) -> ProductOut:
        """Edit a product.

        HQ edits a product's title, description or category, or takes it off sale (`status`) and back on."""
        return product_out(await service.update_product(product_id, data))
