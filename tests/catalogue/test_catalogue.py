"""HQ builds the catalogue: a category tree three levels deep, products with their SKUs at HQ's prices, on and
off sale; shoppers read the tree and the products on sale without a token."""

import pytest

from backend.catalogue.tables import Category, Product, Sku
from tests.conftest import member_login, staff_login

ADMIN = "/api/v1/admin"


def product_body(**overrides) -> dict:
    body = {
        "title": "猫山王榴莲",
        "description": "马来西亚 D197",
        "skus": [
            {
                "code": "DURIAN-1KG",
                "spec": "1 kg",
                "priceFen": 19900,
                "memberPriceFen": 17900,
                "barcode": "6901234567892",
            },
            {"code": "DURIAN-2KG", "spec": "2 kg", "priceFen": 36900},
        ],
    }
    return {**body, **overrides}


async def test_hq_builds_a_tree_and_a_product_that_shoppers_read(client, demo):
    hq = await staff_login(client, "hq")
    fresh = await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "生鲜", "sort": 1})
    assert fresh.status_code == 201, fresh.text
    fruit = await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "水果", "parentId": fresh.json()["id"]})
    durian = await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "榴莲", "parentId": fruit.json()["id"]})
    drinks = await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "饮料", "sort": 0})
    assert (durian.json()["depth"], (await client.get(durian.headers["location"])).json()) == (3, durian.json())
    tree = (await client.get("/api/v1/categories")).json()["items"]
    assert [c["name"] for c in tree] == ["饮料", "生鲜", "水果", "榴莲"]  # depth first, siblings by sort
    assert [c["parentId"] for c in tree] == [None, None, fresh.json()["id"], fruit.json()["id"]]
    assert drinks.status_code == 201

    made = await client.post(f"{ADMIN}/products", headers=hq, json=product_body(categoryId=durian.json()["id"]))
    assert made.status_code == 201, made.text
    product = made.json()
    assert (product["status"], product["categoryId"], len(product["skus"])) == ("on_sale", durian.json()["id"], 2)
    assert [(s["code"], s["priceFen"], s["memberPriceFen"]) for s in product["skus"]] == [
        ("DURIAN-1KG", 19900, 17900),
        ("DURIAN-2KG", 36900, None),
    ]
    shopper = await client.get(made.headers["location"])  # no token needed
    assert shopper.status_code == 200 and shopper.json() == product

    off = await client.patch(f"{ADMIN}/products/{product['id']}", headers=hq, json={"status": "off_sale"})
    assert off.status_code == 200 and off.json()["status"] == "off_sale"
    assert off.json()["updatedAt"] >= product["updatedAt"]
    gone = await client.get(made.headers["location"])
    assert (gone.status_code, gone.json()["code"]) == (404, "catalogue.product_not_found")
    back = await client.patch(
        f"{ADMIN}/products/{product['id']}", headers=hq, json={"status": "on_sale", "title": "榴莲"}
    )
    assert (back.json()["status"], back.json()["title"]) == ("on_sale", "榴莲")
    assert (await client.get(made.headers["location"])).status_code == 200


async def test_a_fourth_level_an_unknown_parent_and_an_unknown_category_are_refused(client, demo):
    hq = await staff_login(client, "hq")
    parent = None
    for name in ("一", "二", "三"):
        body = {"name": name} if parent is None else {"name": name, "parentId": parent}
        parent = (await client.post(f"{ADMIN}/categories", headers=hq, json=body)).json()["id"]
    deep = await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "四", "parentId": parent})
    assert (deep.status_code, deep.json()["code"]) == (422, "catalogue.category_too_deep")
    orphan = await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "孤", "parentId": 999_999})
    assert (orphan.status_code, orphan.json()["code"]) == (422, "catalogue.unknown_category")
    no_such = await client.post(f"{ADMIN}/products", headers=hq, json=product_body(categoryId=999_999))
    assert (no_such.status_code, no_such.json()["code"]) == (422, "catalogue.unknown_category")
    assert await Category.count() == 3 and await Product.count() == 0


@pytest.mark.parametrize(
    ("skus", "code"),
    [
        ([], "request.invalid"),  # a product is sold as at least one SKU
        ([{"code": "A", "spec": "1", "priceFen": 100}] * 2, "catalogue.skus_invalid"),  # one code twice
        ([{"code": "A", "spec": "1", "priceFen": 100, "memberPriceFen": 101}], "catalogue.skus_invalid"),
        ([{"code": "A", "spec": "1", "priceFen": -1}], "request.invalid"),
        ([{"code": "A", "spec": "1", "priceFen": "100"}], "request.invalid"),  # money is a JSON integer
        ([{"code": "A B", "spec": "1", "priceFen": 100}], "request.invalid"),
        ([{"code": f"S{i}", "spec": "1", "priceFen": 1} for i in range(51)], "request.invalid"),
    ],
    ids=["none", "code-twice", "member-price-above", "negative", "string-price", "bad-code", "51-skus"],
)
async def test_skus_that_do_not_add_up_make_nothing(client, demo, skus, code):
    hq = await staff_login(client, "hq")
    refused = await client.post(f"{ADMIN}/products", headers=hq, json=product_body(skus=skus))
    assert refused.json()["code"] == code, refused.text
    assert refused.status_code in (409, 422)
    assert await Product.count() == 0 and await Sku.count() == 0


async def test_a_sku_code_is_the_chains_once(client, demo):
    hq = await staff_login(client, "hq")
    assert (await client.post(f"{ADMIN}/products", headers=hq, json=product_body())).status_code == 201
    skus = [{"code": "NEW-1", "spec": "1", "priceFen": 100}, {"code": "DURIAN-2KG", "spec": "2 kg", "priceFen": 1}]
    again = await client.post(f"{ADMIN}/products", headers=hq, json=product_body(title="另一个", skus=skus))
    assert (again.status_code, again.json()["code"]) == (409, "catalogue.sku_code_taken")
    assert again.json()["details"] == {"codes": ["DURIAN-2KG"]}  # the code that was taken, not the new one
    assert await Product.count() == 1 and await Sku.count() == 2  # the second product's row went with its SKUs


async def test_only_hq_writes_the_catalogue(client, demo):
    manager, cashier = await staff_login(client, "manager1"), await staff_login(client, "cashier1")
    shopper = await member_login(client, openid="oCatalogueShopper0000001")
    for headers in (manager, cashier, shopper["headers"]):
        answer = await client.post(f"{ADMIN}/categories", headers=headers, json={"name": "x"})
        assert answer.status_code == 403
    assert (await client.post(f"{ADMIN}/products", json=product_body())).status_code == 401
    hq = await staff_login(client, "hq")
    missing = await client.patch(f"{ADMIN}/products/999999", headers=hq, json={"status": "off_sale"})
    assert (missing.status_code, missing.json()["code"]) == (404, "catalogue.product_not_found")
    assert (await client.get("/api/v1/categories/999999")).status_code == 404
    assert await Category.count() == 0
