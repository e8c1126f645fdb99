from backend.core.errors import DomainError


class CategoryNotFound(DomainError):
    code = "catalogue.category_not_found"
    status_code = 404
    default_message = "No such category."


class UnknownCategory(DomainError):
    code = "catalogue.unknown_category"
    status_code = 422
    default_message = "That category does not exist."


class CategoryTooDeep(DomainError):
    code = "catalogue.category_too_deep"
    status_code = 422
    default_message = "Categories go three levels deep at most."


class ProductNotFound(DomainError):
    code = "catalogue.product_not_found"
    status_code = 404
    default_message = "No such product."


class SkuCodeTaken(DomainError):
    code = "catalogue.sku_code_taken"
    status_code = 409
    default_message = "Another SKU already has that code."


class SkusInvalid(DomainError):
    code = "catalogue.skus_invalid"
    status_code = 422
    default_message = "The SKUs do not add up."


class UnknownSkus(DomainError):
    code = "catalogue.unknown_skus"
    status_code = 422
    default_message = "Some of the SKUs do not exist, or are named twice."


class UnknownImages(DomainError):
    code = "catalogue.unknown_images"
    status_code = 422
    default_message = "Upload each image first (POST /api/v1/admin/product-images) and send the URL it answered."


class ImageNotFound(DomainError):
    code = "catalogue.image_not_found"
    status_code = 404
    default_message = "No such image."


class StoreNotFound(DomainError):
    code = "catalogue.store_not_found"
    status_code = 404
    default_message = "No such store, or it is not open."
