"""A shopper orders from a store's range, pays in the sandbox, and collects it; the store prepares it, hands
it over and refunds it by line; stock follows every step once."""

from backend.mall.tables import MallOrder
from backend.orders.tables import Order
from backend.points.tables import PointsAccount
from tests.conftest import staff_login
from tests.mall.helpers import STORE_ORDERS, confirm, on_hand, place, range_at_stores, shopper


async def test_a_pickup_order_is_placed_paid_prepared_collected_and_refunded_by_line(client, demo):
    mall = await range_at_stores(client, demo)
    amy = await shopper(client, "amy")
    browse = await client.get(f"/api/v1/stores/{demo['S002']}/products")
    assert browse.status_code == 200, browse.text
    (listed,) = browse.json()["items"]
    assert [(s["priceFen"], s["memberPriceFen"], s["stockLeft"]) for s in listed["skus"]] == [
        (18900, 17900, 20),
        (36900, None, 20),
    ]
    placed = await place(client, amy, demo["S002"], [(mall["small"], 2), (mall["large"], 1)], "amy-order-1")
    assert placed.status_code == 201, placed.text
    body = placed.json()
    order = body["order"]
    assert (order["kind"], order["status"], order["amountFen"], order["fulfilment"]) == (
        "mall",
        "pending_payment",
        2 * 18900 + 36900,
        "pickup",
    )
    assert body["payParams"]["package"].startswith("prepay_id=") and body["payBy"] == order["payBy"]
    assert placed.headers["location"] == f"/api/v1/me/orders/{order['id']}"
    assert (await client.get(placed.headers["location"], headers=amy["headers"])).json() == order  # as written
    assert (await on_hand(demo["S002"], mall["small"]), await on_hand(demo["S002"], mall["large"])) == (18, 19)
    again = await place(client, amy, demo["S002"], [(mall["small"], 2), (mall["large"], 1)], "amy-order-1")
    assert again.status_code == 200 and again.json()["order"]["id"] == order["id"]
    assert await on_hand(demo["S002"], mall["small"]) == 18  # the replay took nothing

    await confirm(client, order["outTradeNo"])
    mine = (await client.get(f"/api/v1/me/orders/{order['id']}", headers=amy["headers"])).json()
    assert (mine["kind"], mine["status"], mine["paymentStatus"]) == ("mall", "paid", "paid")
    assert mine["pointsEarned"] == (2 * 18900 + 36900) * 2 // 100  # the store's rate: 2 points a yuan
    listed_orders = (await client.get("/api/v1/me/orders", headers=amy["headers"])).json()["items"]
    assert [(o["id"], o["kind"]) for o in listed_orders] == [(order["id"], "mall")]

    cashier = await staff_login(client, "cashier2")
    todo = (await client.get(STORE_ORDERS, headers=cashier, params={"storeId": demo["S002"]})).json()["items"]
    assert [o["id"] for o in todo] == [order["id"]] and len(todo[0]["lines"]) == 2
    ready = await client.post(f"{STORE_ORDERS}/{order['id']}/ready", headers=cashier)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    code = ready.json()["pickupCode"]
    assert (
        code
        and (await client.get(f"/api/v1/me/orders/{order['id']}", headers=amy["headers"])).json()["pickupCode"] == code
    )
    other_store = await client.post(
        "/api/v1/cashier/pickups",
        headers=await staff_login(client, "cashier1"),
        json={"storeId": demo["S001"], "pickupCode": code},
    )
    assert other_store.status_code == 404
    picked = await client.post(
        "/api/v1/cashier/pickups", headers=cashier, json={"storeId": demo["S002"], "pickupCode": code}
    )
    assert picked.status_code == 200, picked.text
    assert (picked.json()["id"], picked.json()["status"]) == (order["id"], "picked_up")
    twice = await client.post(
        "/api/v1/cashier/pickups", headers=cashier, json={"storeId": demo["S002"], "pickupCode": code}
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "mall.wrong_status")

    account = (
        await PointsAccount.select(PointsAccount.balance).where(PointsAccount.member == amy["member"]["id"]).first()
    )
    large_line = next(line for line in mine["lines"] if line["skuId"] == mall["large"])
    refunded = await client.post(
        f"{STORE_ORDERS}/{order['id']}/refunds",
        headers=cashier,
        json={"lines": [{"lineId": large_line["id"], "quantity": 1}], "idempotencyKey": "refund-large-1"},
    )
    assert refunded.status_code == 201, refunded.text
    refund = refunded.json()
    assert (refund["amountFen"], refund["status"], refund["lines"]) == (
        36900,
        "succeeded",
        [{"lineId": large_line["id"], "quantity": 1}],
    )
    assert refund["pointsReversed"] == 36900 * 2 // 100  # that line's points
    after = await PointsAccount.select(PointsAccount.balance).where(PointsAccount.member == amy["member"]["id"]).first()
    assert account["balance"] - after["balance"] == 738
    assert await on_hand(demo["S002"], mall["large"]) == 19  # handed over: the unit does not go back to the shelf
    mine = (await client.get(f"/api/v1/me/orders/{order['id']}", headers=amy["headers"])).json()
    assert (mine["status"], mine["paymentStatus"], mine["refundedFen"]) == (
        "partially_refunded",
        "partially_refunded",
        36900,
    )
    too_many = await client.post(
        f"{STORE_ORDERS}/{order['id']}/refunds",
        headers=cashier,
        json={"lines": [{"lineId": large_line["id"], "quantity": 1}], "idempotencyKey": "refund-large-2"},
    )
    assert (too_many.status_code, too_many.json()["code"]) == (422, "mall.refund_lines_invalid")
    rest = await client.post(
        f"{STORE_ORDERS}/{order['id']}/refunds", headers=cashier, json={"idempotencyKey": "refund-rest-1"}
    )
    assert rest.status_code == 201 and rest.json()["amountFen"] == 2 * 18900
    final = await Order.select(Order.status, Order.refunded_fen, Order.paid_fen).where(Order.id == order["id"]).first()
    assert (final["status"], final["refunded_fen"]) == ("refunded", final["paid_fen"])
    assert (await MallOrder.select(MallOrder.status).first())["status"] == "refunded"
