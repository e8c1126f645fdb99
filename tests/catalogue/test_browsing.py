"""Shoppers browse a store's range: what it sells now, by category or a word of the title, at its prices,
paged by cursor, from a cache that a change here clears at once and one elsewhere within a second."""

import asyncio
import io
import time

from PIL import Image

from backend.catalogue.service import PAGE_SECONDS
from backend.catalogue.tables import ProductImage, StoreInventory
from tests.conftest import staff_login

ADMIN = "/api/v1/admin"


async def make_product(client, hq, title: str, code: str, category_id: int | None = None, price: int = 1000) -> dict:
    body = {"title": title, "skus": [{"code": code, "spec": "1 份", "priceFen": price}]}
    if category_id is not None:
        body["categoryId"] = category_id
    made = await client.post(f"{ADMIN}/products", headers=hq, json=body)
    assert made.status_code == 201, made.text
    return made.json()


async def stock(client, hq, store_id: int, *items: dict) -> None:
    put = await client.put(f"{ADMIN}/stores/{store_id}/inventory", headers=hq, json={"items": list(items)})
    assert put.status_code == 200, put.text


async def test_a_store_lists_what_it_sells_by_category_and_by_a_word_of_the_title(client, demo):
    hq = await staff_login(client, "hq")
    fruit = (await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "水果"})).json()
    durians = (
        await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "榴莲", "parentId": fruit["id"]})
    ).json()
    drinks = (await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "饮料"})).json()
    king = await make_product(client, hq, "猫山王榴莲", "MSW-1", durians["id"], 19900)
    golden = await make_product(client, hq, "金枕榴莲", "JZ-1", durians["id"], 9900)
    apple = await make_product(client, hq, "阿克苏苹果", "AKS-1", fruit["id"], 2990)
    juice = await make_product(client, hq, "NFC 橙汁", "NFC-1", drinks["id"], 1500)
    hidden = await make_product(client, hq, "榴莲酥", "LLS-1", None, 3800)
    s1 = demo["S001"]
    await stock(
        client,
        hq,
        s1,
        *({"skuId": p["skus"][0]["id"], "onHand": 10} for p in (king, golden, apple, juice)),
        {"skuId": hidden["skus"][0]["id"], "onHand": 10, "available": False},  # not sold here now
    )
    await stock(client, hq, demo["S002"], {"skuId": king["skus"][0]["id"], "onHand": 3, "priceFen": 18800})

    everything = (await client.get(f"/api/v1/stores/{s1}/products")).json()
    assert [p["title"] for p in everything["items"]] == ["NFC 橙汁", "阿克苏苹果", "金枕榴莲", "猫山王榴莲"]
    assert everything["nextCursor"] is None
    in_fruit = (await client.get(f"/api/v1/stores/{s1}/products", params={"categoryId": fruit["id"]})).json()
    assert [p["title"] for p in in_fruit["items"]] == ["阿克苏苹果", "金枕榴莲", "猫山王榴莲"]  # and below it
    searched = (await client.get(f"/api/v1/stores/{s1}/products", params={"q": "榴莲"})).json()
    assert [p["title"] for p in searched["items"]] == ["金枕榴莲", "猫山王榴莲"]
    assert [
        p["title"] for p in (await client.get(f"/api/v1/stores/{s1}/products", params={"q": "nfc"})).json()["items"]
    ] == ["NFC 橙汁"]
    assert (await client.get(f"/api/v1/stores/{s1}/products", params={"q": "%"})).json()["items"] == everything["items"]
    other = (await client.get(f"/api/v1/stores/{demo['S002']}/products")).json()["items"]
    assert [(p["title"], p["skus"][0]["priceFen"], p["skus"][0]["stockLeft"]) for p in other] == [
        ("猫山王榴莲", 18800, 3)
    ]
    assert (await client.get(f"/api/v1/stores/{demo['S003']}/products")).json()["items"] == []

    first = (await client.get(f"/api/v1/stores/{s1}/products", params={"limit": 3})).json()
    second = (
        await client.get(f"/api/v1/stores/{s1}/products", params={"limit": 3, "cursor": first["nextCursor"]})
    ).json()
    assert [p["id"] for p in first["items"] + second["items"]] == [p["id"] for p in everything["items"]]
    assert second["nextCursor"] is None

    missing = await client.get("/api/v1/stores/999999/products")
    assert (missing.status_code, missing.json()["code"]) == (404, "catalogue.store_not_found")
    bad = await client.get(f"/api/v1/stores/{s1}/products", params={"limit": 0})
    assert (bad.status_code, bad.json()["code"]) == (422, "request.invalid")
    for word in ("榴\x00莲", "\x07"):  # PostgreSQL cannot compare with a NUL: refused before any query
        control = await client.get(f"/api/v1/stores/{s1}/products", params={"q": word})
        assert (control.status_code, control.json()["code"]) == (422, "request.invalid"), word


async def test_a_change_here_shows_at_once_and_one_elsewhere_within_a_second(client, demo):
    hq = await staff_login(client, "hq")
    king = await make_product(client, hq, "猫山王榴莲", "MSW-1")
    sku = king["skus"][0]["id"]
    await stock(client, hq, demo["S001"], {"skuId": sku, "onHand": 10})
    path = f"/api/v1/stores/{demo['S001']}/products"
    assert (await client.get(path)).json()["items"][0]["skus"][0]["stockLeft"] == 10
    await stock(client, hq, demo["S001"], {"skuId": sku, "onHand": 7, "priceFen": 900})
    assert [(s["stockLeft"], s["priceFen"]) for s in (await client.get(path)).json()["items"][0]["skus"]] == [(7, 900)]

    # Another worker's change reaches the database only: this process still answers its page (it is read from
    # the cache), and sees the change once that page is a second old.
    changed = time.monotonic()
    await StoreInventory.update({StoreInventory.on_hand: 4}).where(StoreInventory.sku == sku)
    assert (await client.get(path)).json()["items"][0]["skus"][0]["stockLeft"] == 7
    while (seen := (await client.get(path)).json()["items"][0]["skus"][0]["stockLeft"]) != 4:
        assert time.monotonic() - changed < PAGE_SECONDS + 0.5, "the cached page outlived its second"
        await asyncio.sleep(0.05)
    assert seen == 4


def photo(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, fmt)
    return out.getvalue()


async def test_product_photos_are_checked_reencoded_and_served_for_good(client, demo):
    hq = await staff_login(client, "hq")
    upload = await client.post(
        f"{ADMIN}/product-images", headers={**hq, "Content-Type": "image/png"}, content=photo(2400, 1600)
    )
    assert upload.status_code == 201, upload.text
    image = upload.json()
    assert (image["width"], image["height"]) == (1200, 800) and upload.headers["location"] == image["url"]
    served = await client.get(image["url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert "immutable" in served.headers["cache-control"] and "max-age=31536000" in served.headers["cache-control"]
    assert Image.open(io.BytesIO(served.content)).format == "JPEG"
    form = await client.post(
        f"{ADMIN}/product-images", headers=hq, files={"file": ("p.webp", photo(2400, 1600, "WEBP"), "image/webp")}
    )
    assert form.status_code == 201

    for body, content_type, status, code in (
        (b"GIF89a" + b"\0" * 40, "image/png", 415, "posters.not_an_image"),  # the bytes decide, not the header
        (b"not an image", "image/jpeg", 415, "posters.not_an_image"),
    ):
        refused = await client.post(
            f"{ADMIN}/product-images", headers={**hq, "Content-Type": content_type}, content=body
        )
        assert (refused.status_code, refused.json()["code"]) == (status, code)
    huge = Image.new("1", (6000, 6000))
    out = io.BytesIO()
    huge.save(out, "PNG")
    too_many = await client.post(
        f"{ADMIN}/product-images", headers={**hq, "Content-Type": "image/png"}, content=out.getvalue()
    )
    assert (too_many.status_code, too_many.json()["code"]) == (413, "posters.image_too_large")
    cashier = await staff_login(client, "cashier1")
    assert (
        await client.post(
            f"{ADMIN}/product-images", headers={**cashier, "Content-Type": "image/png"}, content=photo(10, 10)
        )
    ).status_code == 403
    assert await ProductImage.count() == 2

    made = await client.post(
        f"{ADMIN}/products",
        headers=hq,
        json={
            "title": "猫山王榴莲",
            "images": [image["url"]],
            "skus": [{"code": "MSW-1", "spec": "1 kg", "priceFen": 100}],
        },
    )
    assert made.status_code == 201 and made.json()["images"] == [image["url"]]
    unknown = "/api/v1/product-images/" + "0" * 64 + ".jpg"
    refused = await client.patch(f"{ADMIN}/products/{made.json()['id']}", headers=hq, json={"images": [unknown]})
    assert (refused.status_code, refused.json()["code"]) == (422, "catalogue.unknown_images")
    assert (await client.get(unknown)).status_code == 404
    assert (await client.get(f"/api/v1/products/{made.json()['id']}")).json()["images"] == [image["url"]]
