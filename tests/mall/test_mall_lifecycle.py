"""Mall orders that are not simply paid and collected: bad input changes nothing, unpaid orders expire or
are cancelled and give their stock back once, paid ones cancelled before they are prepared are refunded in
full, deliveries stay within the store's radius, and the last units go to exactly as many shoppers."""

import asyncio
from collections import Counter

from backend.catalogue.tables import StoreInventory
from backend.mall.tables import MallOrder
from backend.orders.tables import Order, OrderLine
from backend.payments import service as payments
from backend.payments.policy import PaymentPolicy
from backend.stores import service as stores
from backend.stores.schemas import StoreCreate
from backend.stores.tables import StaffStore
from tests.conftest import staff_login, without_constraint
from tests.groupbuy.test_seats import shoppers
from tests.mall.helpers import ADMIN, ORDERS, STORE_ORDERS, confirm, make_due, on_hand, place, range_at_stores, shopper


async def test_bad_orders_are_refused_with_their_codes_and_change_nothing(client, demo):
    mall = await range_at_stores(client, demo)
    bob = await shopper(client, "bob")
    hq = mall["hq"]
    off = await client.post(
        f"{ADMIN}/products",
        headers=hq,
        json={"title": "下架", "skus": [{"code": "OFF-1", "spec": "1", "priceFen": 100}]},
    )
    off_sku = off.json()["skus"][0]["id"]
    await client.put(
        f"{ADMIN}/stores/{demo['S001']}/inventory", headers=hq, json={"items": [{"skuId": off_sku, "onHand": 5}]}
    )
    await client.patch(f"{ADMIN}/products/{off.json()['id']}", headers=hq, json={"status": "off_sale"})
    gift = await client.post(
        f"{ADMIN}/products",
        headers=hq,
        json={"title": "赠品", "skus": [{"code": "GIFT-1", "spec": "1", "priceFen": 0}]},
    )
    gift_sku = gift.json()["skus"][0]["id"]
    await client.put(
        f"{ADMIN}/stores/{demo['S001']}/inventory", headers=hq, json={"items": [{"skuId": gift_sku, "onHand": 5}]}
    )
    s001, small = demo["S001"], mall["small"]
    cases = [
        ([(gift_sku, 1)], {}, 422, "mall.nothing_to_pay"),
        ([(999_999, 1)], {}, 422, "mall.skus_not_sold"),
        ([(off_sku, 1)], {}, 422, "mall.skus_not_sold"),
        ([(small, 1), (small, 2)], {}, 422, "mall.lines_invalid"),
        ([(small, 0)], {}, 422, "request.invalid"),
        ([(small, 10_000)], {}, 422, "request.invalid"),
        ([(small, 1)] * 51, {}, 422, "request.invalid"),
        ([(small, 21)], {}, 409, "mall.out_of_stock"),
        ([(small, 1)], {"couponId": 7}, 422, "coupons.not_usable"),
        ([(small, 1)], {"amountFen": 1}, 422, "request.invalid"),
        ([(small, 1)], {"pointsToRedeem": 5_000_000}, 422, "cashier.points_not_exact"),
        ([(small, 1)], {"fulfilment": "delivery"}, 422, "mall.address_required"),
        ([(small, 1)], {"fulfilment": "courier"}, 422, "request.invalid"),
    ]
    for lines, extra, status, code in cases:
        answer = await place(client, bob, s001, lines, "bad-order-1", **extra)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (lines, extra, answer.text)
    priced = await client.post(
        ORDERS,
        headers=bob["headers"],
        json={
            "storeId": s001,
            "lines": [{"skuId": small, "quantity": 1, "priceFen": 1}],
            "fulfilment": "pickup",
            "idempotencyKey": "bad-order-2",
        },
    )
    assert (priced.status_code, priced.json()["code"]) == (422, "request.invalid")
    elsewhere = await place(client, bob, demo["S003"], [(small, 1)], "bad-order-3")  # S003 stocks nothing
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (422, "mall.skus_not_sold")
    no_delivery = await place(
        client,
        bob,
        s001,
        [(small, 1)],
        "bad-order-4",
        fulfilment="delivery",
        address={"name": "Bob", "phone": "13800138000", "text": "1号楼", "latitude": 31.2, "longitude": 121.4},
    )
    assert (no_delivery.status_code, no_delivery.json()["code"]) == (422, "mall.no_delivery")
    anonymous = await client.post(ORDERS, json={"storeId": s001})
    assert anonymous.status_code == 401
    assert await Order.count() == 0 and await MallOrder.count() == 0
    assert (await on_hand(s001, small), await on_hand(s001, mall["large"])) == (20, 20)

    placed = (await place(client, bob, s001, [(small, 1)], "good-order-1")).json()["order"]
    conflict = await place(client, bob, s001, [(small, 2)], "good-order-1")
    assert (conflict.status_code, conflict.json()["code"]) == (409, "mall.idempotency_conflict")
    eve = await shopper(client, "eve")
    assert (await client.get(f"/api/v1/me/orders/{placed['id']}", headers=eve["headers"])).status_code == 404
    theirs = await client.post(f"{ORDERS}/{placed['id']}/cancel", headers=eve["headers"])
    assert (theirs.status_code, theirs.json()["code"]) == (404, "mall.order_not_found")
    cashier = await staff_login(client, "cashier2")  # of S002: S001's order does not exist for them
    assert (await client.post(f"{STORE_ORDERS}/{placed['id']}/ready", headers=cashier)).status_code == 404
    listed = await client.get(STORE_ORDERS, headers=cashier, params={"storeId": s001})
    assert listed.status_code == 404
    assert await on_hand(s001, small) == 19


async def test_an_unpaid_order_expires_once_even_with_two_sweepers(client, demo, sandbox_provider, settings):
    mall = await range_at_stores(client, demo)
    cat = await shopper(client, "cat")
    order = (await place(client, cat, demo["S001"], [(mall["small"], 3), (mall["large"], 2)], "expire-1")).json()[
        "order"
    ]
    assert (await on_hand(demo["S001"], mall["small"]), await on_hand(demo["S001"], mall["large"])) == (17, 18)
    await make_due(order["id"])
    policy = PaymentPolicy.from_settings(settings)
    await asyncio.gather(*(payments.advance_due(provider=sandbox_provider, policy=policy) for _ in range(2)))
    await payments.advance_due(provider=sandbox_provider, policy=policy)
    assert (await on_hand(demo["S001"], mall["small"]), await on_hand(demo["S001"], mall["large"])) == (20, 20)
    mine = (await client.get(f"/api/v1/me/orders/{order['id']}", headers=cat["headers"])).json()
    assert (mine["status"], mine["paymentStatus"]) == ("cancelled", "cancelled")
    again = await payments.advance_due(provider=sandbox_provider, policy=policy)
    assert again == 0 and await on_hand(demo["S001"], mall["small"]) == 20


async def test_a_shopper_cancels_unpaid_and_paid_orders_but_not_prepared_ones(client, demo):
    mall = await range_at_stores(client, demo)
    dan = await shopper(client, "dan")
    s001, small = demo["S001"], mall["small"]
    unpaid = (await place(client, dan, s001, [(small, 4)], "cancel-1")).json()["order"]
    cancelled = await client.post(f"{ORDERS}/{unpaid['id']}/cancel", headers=dan["headers"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    assert (await client.post(f"{ORDERS}/{unpaid['id']}/cancel", headers=dan["headers"])).status_code == 200
    assert await on_hand(s001, small) == 20

    paid = (await place(client, dan, s001, [(small, 2)], "cancel-2")).json()["order"]
    await confirm(client, paid["outTradeNo"])
    assert await on_hand(s001, small) == 18
    refunded = await client.post(f"{ORDERS}/{paid['id']}/cancel", headers=dan["headers"])
    assert refunded.status_code == 200, refunded.text
    assert (refunded.json()["status"], refunded.json()["paymentStatus"], refunded.json()["refundedFen"]) == (
        "refunded",
        "refunded",
        2 * 19900,
    )
    assert await on_hand(s001, small) == 20  # never prepared: back on the shelf
    cashier = await staff_login(client, "cashier1")
    assert (await client.post(f"{STORE_ORDERS}/{paid['id']}/ready", headers=cashier)).json()[
        "code"
    ] == "mall.wrong_status"

    prepared = (await place(client, dan, s001, [(small, 1)], "cancel-3")).json()["order"]
    await confirm(client, prepared["outTradeNo"])
    assert (await client.post(f"{STORE_ORDERS}/{prepared['id']}/ready", headers=cashier)).status_code == 200
    late = await client.post(f"{ORDERS}/{prepared['id']}/cancel", headers=dan["headers"])
    assert (late.status_code, late.json()["code"]) == (409, "mall.wrong_status")
    refund = await client.post(
        f"{STORE_ORDERS}/{prepared['id']}/refunds", headers=cashier, json={"idempotencyKey": "whole-prepared"}
    )
    assert refund.status_code == 201 and refund.json()["amountFen"] == 19900
    assert await on_hand(s001, small) == 19 + 1  # ready but never handed over: the unit goes back


async def test_a_delivery_within_the_radius_is_delivered_and_one_outside_is_refused(client, demo):
    near = await stores.create_store(
        StoreCreate(code="S010", name="滨江店", latitude=31.2304, longitude=121.4737, delivery_radius_m=3000)
    )
    await StaffStore.insert(StaffStore(staff=demo["cashier1"], store=near.id))
    mall = await range_at_stores(client, demo, stores=("S001",))
    await client.put(
        f"{ADMIN}/stores/{near.id}/inventory",
        headers=mall["hq"],
        json={"items": [{"skuId": mall["small"], "onHand": 5}]},
    )
    eli = await shopper(client, "eli")
    address = {
        "name": "Eli",
        "phone": "13800138000",
        "text": "人民广场 1 号",
        "latitude": 31.2400,
        "longitude": 121.4737,
    }
    far = {**address, "latitude": 31.3304}  # about 11 km north
    refused = await place(client, eli, near.id, [(mall["small"], 1)], "deliver-1", fulfilment="delivery", address=far)
    assert (refused.status_code, refused.json()["code"]) == (422, "mall.outside_delivery_area")
    assert refused.json()["details"]["deliveryRadiusM"] == 3000 and refused.json()["details"]["distanceM"] > 10_000
    placed = await place(
        client, eli, near.id, [(mall["small"], 1)], "deliver-2", fulfilment="delivery", address=address
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()["order"]
    assert (order["fulfilment"], order["address"]) == (
        "delivery",
        {"name": "Eli", "phone": "13800138000", "text": "人民广场 1 号"},
    )
    await confirm(client, order["outTradeNo"])
    cashier = await staff_login(client, "cashier1")
    delivered = await client.post(f"{STORE_ORDERS}/{order['id']}/delivered", headers=cashier)
    assert delivered.status_code == 200 and delivered.json()["status"] == "delivered", delivered.text
    assert (await client.post(f"{STORE_ORDERS}/{order['id']}/delivered", headers=cashier)).status_code == 200
    row = await MallOrder.select(MallOrder.distance_m, MallOrder.handed_over_by).first()
    assert 1000 < row["distance_m"] < 1200 and row["handed_over_by"] == demo["cashier1"]
    no_store_point = await client.post(
        "/api/v1/admin/stores", headers=mall["hq"], json={"code": "S011", "name": "无坐标", "deliveryRadiusM": 1000}
    )
    assert (no_store_point.status_code, no_store_point.json()["code"]) == (422, "stores.delivery_needs_location")


async def test_two_hundred_shoppers_for_the_last_fifty_units_buy_exactly_fifty(client, demo):
    async with without_constraint(StoreInventory, "inventory_sane"):  # the guarded update alone holds
        mall = await range_at_stores(client, demo, on_hand=50, stores=("S001",))
        crowd = await shoppers(client, 200, prefix="oMallRush")
        answers = await asyncio.gather(
            *(place(client, who, demo["S001"], [(mall["small"], 1)], f"rush-{i:04d}") for i, who in enumerate(crowd))
        )
        seen = Counter((a.status_code, a.json().get("code")) for a in answers)
        assert seen == {(201, None): 50, (409, "mall.out_of_stock"): 150}, seen
        assert await on_hand(demo["S001"], mall["small"]) == 0
        sold = await OrderLine.select(OrderLine.quantity).where(OrderLine.sku_id == mall["small"])
        assert sum(row["quantity"] for row in sold) == 50 and await MallOrder.count() == 50


async def test_concurrent_refunds_of_one_line_never_give_back_more_units_than_it_had(client, demo):
    mall = await range_at_stores(client, demo)
    fay = await shopper(client, "fay")
    order = (await place(client, fay, demo["S001"], [(mall["small"], 2), (mall["large"], 1)], "refund-race")).json()[
        "order"
    ]
    await confirm(client, order["outTradeNo"])
    cashier = await staff_login(client, "cashier1")
    line = next(
        line
        for line in (await client.get(f"/api/v1/me/orders/{order['id']}", headers=fay["headers"])).json()["lines"]
        if line["skuId"] == mall["small"]
    )
    answers = await asyncio.gather(
        *(
            client.post(
                f"{STORE_ORDERS}/{order['id']}/refunds",
                headers=cashier,
                json={"lines": [{"lineId": line["id"], "quantity": 1}], "idempotencyKey": f"race-refund-{i}"},
            )
            for i in range(6)
        )
    )
    seen = Counter((a.status_code, a.json().get("code")) for a in answers)
    assert seen == {(201, None): 2, (422, "mall.refund_lines_invalid"): 4}, seen
    refunded = await Order.select(Order.refunded_fen).where(Order.id == order["id"]).first()
    assert refunded["refunded_fen"] == 2 * 19900
    assert await on_hand(demo["S001"], mall["small"]) == 20  # never handed over: both units back on the shelf
