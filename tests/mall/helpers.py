"""A small range at two stores, and shoppers who order from it."""

from datetime import timedelta

from backend.catalogue.tables import StoreInventory
from backend.core.clock import utcnow
from backend.orders.tables import Order
from backend.payments.tables import PaymentTrade
from tests.conftest import member_login, staff_login

ADMIN = "/api/v1/admin"
ORDERS = "/api/v1/me/mall-orders"
STORE_ORDERS = "/api/v1/cashier/mall-orders"


async def range_at_stores(client, demo, *, on_hand: int = 20, stores=("S001", "S002")) -> dict:
    """HQ makes a category and a product with two SKUs, stocked at the stores (S002 at its own price)."""
    hq = await staff_login(client, "hq")
    category = (await client.post(f"{ADMIN}/categories", headers=hq, json={"name": "水果"})).json()
    made = await client.post(
        f"{ADMIN}/products",
        headers=hq,
        json={
            "title": "猫山王榴莲",
            "categoryId": category["id"],
            "skus": [
                {"code": "DURIAN-1KG", "spec": "1 kg", "priceFen": 19900, "memberPriceFen": 17900},
                {"code": "DURIAN-2KG", "spec": "2 kg", "priceFen": 36900},
            ],
        },
    )
    assert made.status_code == 201, made.text
    product = made.json()
    small, large = (sku["id"] for sku in product["skus"])
    for code in stores:
        own = 18900 if code == "S002" else None
        items = [
            {"skuId": small, "onHand": on_hand, "priceFen": own},
            {"skuId": large, "onHand": on_hand},
        ]
        put = await client.put(f"{ADMIN}/stores/{demo[code]}/inventory", headers=hq, json={"items": items})
        assert put.status_code == 200, put.text
    return {"hq": hq, "category": category, "product": product, "small": small, "large": large}


async def shopper(client, name: str) -> dict:
    return await member_login(client, openid=f"oMall{name:0>23}")


async def place(client, who: dict, store_id: int, lines: list[tuple[int, int]], key: str, **extra):
    return await client.post(
        ORDERS,
        headers=who["headers"],
        json={
            "storeId": store_id,
            "lines": [{"skuId": sku, "quantity": quantity} for sku, quantity in lines],
            "fulfilment": "pickup",
            "idempotencyKey": key,
            **extra,
        },
    )


async def confirm(client, out_trade_no: str) -> None:
    response = await client.post(f"/api/v1/sandbox/payments/{out_trade_no}/confirm", json={})
    assert response.status_code == 200 and response.json()["notifyStatus"] == 204, response.text


async def make_due(order_id: int) -> None:
    """The order's payment window has passed, and its trade is due to be asked about."""
    past = utcnow() - timedelta(seconds=1)
    await PaymentTrade.update({PaymentTrade.expires_at: past, PaymentTrade.next_query_at: past}).where(
        PaymentTrade.order == order_id
    )
    await Order.update({Order.pay_by: past}).where(Order.id == order_id)


async def on_hand(store_id: int, sku_id: int) -> int:
    """What the store can still sell of the SKU."""
    row = (
        await StoreInventory.select(StoreInventory.on_hand)
        .where((StoreInventory.store == store_id) & (StoreInventory.sku == sku_id))
        .first()
    )
    return row["on_hand"]
