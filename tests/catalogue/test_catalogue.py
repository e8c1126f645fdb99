"""HQ builds the catalogue: a category tree three levels deep, products with their SKUs at HQ's prices, on and
off sale; shoppers read the tree and the products on sale without a token."""

import pytest

from backend.catalogue.tables import Category, Product, Sku, StoreInventory
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


async def new_product(client, hq) -> dict:
    return (await client.post(f"{ADMIN}/products", headers=hq, json=product_body())).json()


async def test_a_store_sells_at_its_own_price_what_it_has_and_hq_or_its_manager_sets_it(client, demo):
    hq, manager = await staff_login(client, "hq"), await staff_login(client, "manager1")
    product = await new_product(client, hq)
    one_kg, two_kg = (sku["id"] for sku in product["skus"])
    inventory = f"{ADMIN}/stores/{demo['S001']}/inventory"
    items = [{"skuId": one_kg, "onHand": 12, "priceFen": 18800}, {"skuId": two_kg, "onHand": 5, "available": False}]
    answer = await client.put(inventory, headers=manager, json={"items": items})  # S001 is manager1's
    assert answer.status_code == 200 and answer.json() == {"storeId": demo["S001"], "items": 2}, answer.text
    at_s001 = (await client.get(f"/api/v1/products/{product['id']}?storeId={demo['S001']}")).json()["skus"]
    assert [(s["priceFen"], s["memberPriceFen"], s["stockLeft"]) for s in at_s001] == [
        (18800, 17900, 12),  # the store's price; HQ's member price
        (36900, None, 0),  # HQ's price; not sold there now
    ]
    at_s002 = (await client.get(f"/api/v1/products/{product['id']}?storeId={demo['S002']}")).json()["skus"]
    assert [s["stockLeft"] for s in at_s002] == [0, 0]  # nothing stocked there
    assert [s.get("stockLeft") for s in (await client.get(f"/api/v1/products/{product['id']}")).json()["skus"]] == [
        None,
        None,
    ]
    # A second put updates the rows it names and leaves the others.
    again = await client.put(inventory, headers=hq, json={"items": [{"skuId": one_kg, "onHand": 3}]})
    assert again.status_code == 200
    rows = await StoreInventory.select(StoreInventory.on_hand, StoreInventory.price_fen).order_by(StoreInventory.sku)
    assert rows == [{"on_hand": 3, "price_fen": None}, {"on_hand": 5, "price_fen": None}]


async def test_inventory_that_does_not_fit_changes_nothing(client, demo):
    hq, manager = await staff_login(client, "hq"), await staff_login(client, "manager1")
    cashier = await staff_login(client, "cashier1")
    product = await new_product(client, hq)
    sku = product["skus"][0]["id"]
    s001, s002 = f"{ADMIN}/stores/{demo['S001']}/inventory", f"{ADMIN}/stores/{demo['S002']}/inventory"
    refusals = [
        (manager, s002, {"items": [{"skuId": sku, "onHand": 1}]}, 404),  # not the manager's store
        (cashier, s001, {"items": [{"skuId": sku, "onHand": 1}]}, 403),
        (hq, f"{ADMIN}/stores/999999/inventory", {"items": [{"skuId": sku, "onHand": 1}]}, 404),
        (hq, s001, {"items": [{"skuId": sku, "onHand": 1}, {"skuId": 999999, "onHand": 1}]}, 422),
        (hq, s001, {"items": [{"skuId": sku, "onHand": 1}, {"skuId": sku, "onHand": 2}]}, 422),
        (hq, s001, {"items": [{"skuId": sku, "onHand": -1}]}, 422),
        (hq, s001, {"items": []}, 422),
        (hq, s001, {"items": [{"skuId": sku, "onHand": 1}] * 5_001}, 422),
    ]
    for headers, path, body, status in refusals:
        answer = await client.put(path, headers=headers, json=body)
        assert answer.status_code == status, (path, body["items"][:2], answer.text)
    assert await StoreInventory.count() == 0
    unknown = await client.put(s001, headers=hq, json={"items": [{"skuId": 999999, "onHand": 1}]})
    assert (unknown.json()["code"], unknown.json()["details"]) == ("catalogue.unknown_skus", {"skuIds": [999999]})


async def test_a_whole_range_of_five_thousand_skus_is_one_request(client, demo):
    hq = await staff_login(client, "hq")
    for start in range(0, 5_000, 50):
        skus = [{"code": f"R{i:05d}", "spec": "1", "priceFen": 100 + i} for i in range(start, start + 50)]
        made = await client.post(f"{ADMIN}/products", headers=hq, json=product_body(title=f"P{start}", skus=skus))
        assert made.status_code == 201
    ids = [row["id"] for row in await Sku.select(Sku.id).order_by(Sku.id)]
    items = [{"skuId": sku_id, "onHand": 7, "priceFen": 99} for sku_id in ids]
    inventory = f"{ADMIN}/stores/{demo['S003']}/inventory"
    assert (await client.put(inventory, headers=hq, json={"items": items})).json()["items"] == 5_000
    assert await StoreInventory.count().where(StoreInventory.on_hand == 7) == 5_000
    items = [{**item, "onHand": 8} for item in items]
    assert (await client.put(inventory, headers=hq, json={"items": items})).status_code == 200  # all updates
    assert await StoreInventory.count().where(StoreInventory.on_hand == 8) == 5_000
