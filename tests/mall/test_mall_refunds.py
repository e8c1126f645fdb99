"""Refunds of mall orders while WeChat Pay is slow or refuses: the order is taken back from the store when the
refund is asked for, stock follows the money, and a shopper's refused cancel is asked again."""

from datetime import timedelta

import pytest

from backend.core.clock import utcnow
from backend.mall import service
from backend.mall.tables import MallOrder
from backend.orders.tables import Order
from backend.payments import refunds
from backend.payments.errors import RefundRejected
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import RefundResult, RefundState
from backend.payments.tables import PaymentRefund
from backend.sandbox.tables import SandboxRefund
from tests.cashier.test_refunds import AnswersProcessing, Unreachable
from tests.conftest import staff_login
from tests.mall.helpers import ADMIN, STORE_ORDERS, confirm, on_hand, place, range_at_stores, shopper


class RefusesRefunds(Unreachable):
    """WeChat Pay closes every refund it is asked for."""

    async def refund(self, **call):
        return RefundResult(RefundState.closed)


async def paid_order(client, demo, mall, name: str, quantity: int = 1) -> tuple[dict, dict]:
    who = await shopper(client, name)
    order = (await place(client, who, demo["S001"], [(mall["small"], quantity)], f"order-{name}")).json()["order"]
    await confirm(client, order["outTradeNo"])
    return who, order


async def test_a_refund_under_way_takes_a_ready_order_back_and_its_stock_follows_the_money(
    client, demo, sandbox_provider, settings
):
    mall = await range_at_stores(client, demo)
    _, order = await paid_order(client, demo, mall, "gus", quantity=2)
    cashier = await staff_login(client, "cashier1")
    code = (await client.post(f"{STORE_ORDERS}/{order['id']}/ready", headers=cashier)).json()["pickupCode"]
    policy = PaymentPolicy.from_settings(settings)
    refund, created = await service.refund(
        order["id"],
        lines=None,
        idempotency_key="slow-refund-1",
        reason="",
        staff_id=demo["cashier1"],
        acts_for=lambda store_id: True,
        provider=AnswersProcessing(sandbox_provider),
        policy=policy,
    )
    assert created and refund.status == "processing"
    assert (await MallOrder.select(MallOrder.status).first())["status"] == "cancelled"
    pickup = await client.post(
        "/api/v1/cashier/pickups", headers=cashier, json={"storeId": demo["S001"], "pickupCode": code}
    )
    assert (pickup.status_code, pickup.json()["code"]) == (409, "mall.wrong_status")  # the goods stay
    assert await on_hand(demo["S001"], mall["small"]) == 18  # not back before the money is

    await SandboxRefund.update({SandboxRefund.status: "SUCCESS"}, force=True)
    await PaymentRefund.update({PaymentRefund.next_query_at: utcnow() - timedelta(seconds=1)}, force=True)
    await refunds.advance_due(provider=sandbox_provider, policy=policy)
    assert await on_hand(demo["S001"], mall["small"]) == 20
    assert (await MallOrder.select(MallOrder.status).first())["status"] == "refunded"


async def test_a_cancel_whose_refund_is_refused_keeps_the_money_and_is_asked_again(
    client, demo, sandbox_provider, settings
):
    mall = await range_at_stores(client, demo)
    hal, order = await paid_order(client, demo, mall, "hal")
    policy = PaymentPolicy.from_settings(settings)
    with pytest.raises(RefundRejected):
        await service.cancel(
            order["id"], member_id=hal["member"]["id"], provider=RefusesRefunds(sandbox_provider), policy=policy
        )
    row = await Order.select(Order.status, Order.refunded_fen).where(Order.id == order["id"]).first()
    assert (row["status"], row["refunded_fen"]) == ("paid", 0)  # nothing went back
    assert await on_hand(demo["S001"], mall["small"]) == 19
    again = await client.post(f"/api/v1/me/mall-orders/{order['id']}/cancel", headers=hal["headers"])
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["refundedFen"]) == ("refunded", 19900)
    assert await on_hand(demo["S001"], mall["small"]) == 20
    keys = [
        r["idempotency_key"]
        for r in await PaymentRefund.select(PaymentRefund.idempotency_key).order_by(PaymentRefund.id)
    ]
    assert keys == ["#cancel:1", "#cancel:2"]


async def test_a_refund_of_nothing_is_409_and_the_shoppers_key_is_not_the_staffs(client, demo):
    mall = await range_at_stores(client, demo)
    gift = await client.post(
        f"{ADMIN}/products",
        headers=mall["hq"],
        json={"title": "赠品", "skus": [{"code": "GIFT-1", "spec": "1", "priceFen": 0}]},
    )
    gift_sku = gift.json()["skus"][0]["id"]
    await client.put(
        f"{ADMIN}/stores/{demo['S001']}/inventory",
        headers=mall["hq"],
        json={"items": [{"skuId": gift_sku, "onHand": 5}]},
    )
    ivy = await shopper(client, "ivy")
    order = (await place(client, ivy, demo["S001"], [(mall["small"], 1), (gift_sku, 1)], "with-gift")).json()["order"]
    await confirm(client, order["outTradeNo"])
    cashier = await staff_login(client, "cashier1")
    lines = (await client.get(f"/api/v1/me/orders/{order['id']}", headers=ivy["headers"])).json()["lines"]
    gift_line = next(line["id"] for line in lines if line["skuId"] == gift_sku)
    free = await client.post(
        f"{STORE_ORDERS}/{order['id']}/refunds",
        headers=cashier,
        json={"lines": [{"lineId": gift_line, "quantity": 1}], "idempotencyKey": "gift-refund"},
    )
    assert (free.status_code, free.json()["code"]) == (409, "mall.nothing_to_refund")
    theirs = await client.post(
        f"{STORE_ORDERS}/{order['id']}/refunds", headers=cashier, json={"idempotencyKey": "#cancel:1"}
    )
    assert theirs.status_code == 422
    whole = await client.post(
        f"{STORE_ORDERS}/{order['id']}/refunds", headers=cashier, json={"idempotencyKey": "all-of-it"}
    )
    assert whole.status_code == 201 and whole.json()["amountFen"] == 19900
    replay = await client.post(
        f"{STORE_ORDERS}/{order['id']}/refunds",
        headers=cashier,
        json={"idempotencyKey": "all-of-it", "reason": "换个理由"},
    )
    assert (replay.status_code, replay.json()["code"]) == (409, "cashier.idempotency_conflict")
    nothing = await client.post(
        f"{STORE_ORDERS}/{order['id']}/refunds", headers=cashier, json={"idempotencyKey": "more-of-it"}
    )
    assert (nothing.status_code, nothing.json()["code"]) == (409, "mall.nothing_to_refund")
