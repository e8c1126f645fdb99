import time
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from backend.cashier import refunds, service
from backend.cashier.errors import OrderNotFound
from backend.cashier.schemas import (
    LandingOut,
    OrderOut,
    OrdersPage,
    PayParams,
    RefundCreate,
    RefundOut,
    StorePaymentCreate,
    StorePaymentOut,
    TillOrderCreate,
)
from backend.core.paging import Cursor, Limit
from backend.core.ratelimit import client_address
from backend.members import service as members
from backend.members.auth import CurrentMember, provide_current_member
from backend.services import Services
from backend.stores import service as stores
from backend.stores.auth import CurrentStaff, provide_current_staff


async def order_out(order: dict[str, Any]) -> OrderOut:
    landing = None
    if order["status"] == "paid":
        store = await stores.recent_store(order["store"])
        if store["landing_text"] or store["landing_url"]:
            landing = LandingOut(text=store["landing_text"], url=store["landing_url"] or None)
    return OrderOut(
        id=order["id"],
        store_id=order["store"],
        amount_fen=order["amount_fen"],
        paid_fen=order["paid_fen"],
        points_redeemed=order["points_redeemed"],
        status=order["status"],
        out_trade_no=order["out_trade_no"],
        member_id=order["member"],
        member_enrolled=order["member_enrolled"],
        points_earned=order["points_earned"],
        created_at=order["created_at"],
        paid_at=order["paid_at"],
        landing=landing,
    )


def refund_out(refund: dict[str, Any]) -> RefundOut:
    return RefundOut(
        refund_id=refund["id"],
        order_id=refund["order"],
        out_refund_no=refund["out_refund_no"],
        amount_fen=refund["amount_fen"],
        status=refund["status"],
        points_reversed=refund["points_reversed"],
        points_restored=refund["points_restored"],
        created_at=refund["created_at"],
        settled_at=refund["settled_at"],
    )


async def _store_order(staff: CurrentStaff, order_id: int) -> dict[str, Any]:
    """The order, if it is one of the stores this staff member acts for; another store's order does not exist."""
    order = await service.get_order(order_id)
    if not staff.acts_for(order["store"]):
        raise OrderNotFound(order_id=order_id)
    return order


class CashierOrderController(Controller):
    path = "/api/v1/cashier/orders"
    tags = ["Cashier"]
    dependencies = {"staff": Provide(provide_current_staff)}

    @post(operation_id="CreateTillOrder")
    async def create(
        self,
        services: NamedDependency[Services],
        request: Request,
        staff: NamedDependency[CurrentStaff],
        data: JSONBody[TillOrderCreate],
    ) -> Response[OrderOut]:
        staff.ensure_store(data.store_id)
        replayed = {
            "amount_fen": data.amount_fen,
            "auth_code": data.auth_code,
            "member_code": data.member_code,
            "points_to_redeem": data.points_to_redeem,
        }
        member_id = None
        if data.member_code:
            # A retry is answered before the member code is looked at: the first request spent it. Without a
            # code, the order's unique key answers a retry inside `checkout`.
            replay = await service.replayed_order(
                data.store_id, data.idempotency_key, replayed, services.checkout_policy
            )
            if replay is not None:
                return Response(await order_out(replay), status_code=200)
            profile = await members.look_up_member_code(
                data.member_code,
                codes=services.member_codes,
                kv=services.kv,
                staff_id=staff.id,
                till=data.till_id or client_address(request.scope),
                now=time.time(),
                failure_limit=services.settings.member_lookup_failure_limit,
                window=services.settings.member_lookup_failure_window_seconds,
            )
            member_id = profile["id"]
        order, created = await service.checkout(
            store_id=data.store_id,
            staff_id=staff.id,
            amount_fen=data.amount_fen,
            auth_code=data.auth_code,
            idempotency_key=data.idempotency_key,
            request=replayed,
            member_id=member_id,
            points_to_redeem=data.points_to_redeem,
            provider=services.payment_provider,
            policy=services.checkout_policy,
            scene=data.scene or "",
        )
        return Response(await order_out(order), status_code=201 if created else 200)

    @get("/{order_id:int}", operation_id="GetTillOrder")
    async def get_order(self, staff: NamedDependency[CurrentStaff], order_id: FromPath[int]) -> OrderOut:
        return await order_out(await _store_order(staff, order_id))

    @post("/{order_id:int}/cancel", operation_id="CancelTillOrder", status_code=200)
    async def cancel(
        self,
        services: NamedDependency[Services],
        staff: NamedDependency[CurrentStaff],
        order_id: FromPath[int],
    ) -> OrderOut:
        await _store_order(staff, order_id)
        return await order_out(
            await service.cancel(order_id, provider=services.payment_provider, policy=services.checkout_policy)
        )

    @post("/{order_id:int}/refunds", operation_id="RefundTillOrder")
    async def refund(
        self,
        services: NamedDependency[Services],
        staff: NamedDependency[CurrentStaff],
        order_id: FromPath[int],
        data: JSONBody[RefundCreate],
    ) -> Response[RefundOut]:
        """Part or all of a paid order, once per idempotency key; 200 with the same refund for a retry."""
        await _store_order(staff, order_id)
        refund, created = await refunds.request_refund(
            order_id,
            staff_id=staff.id,
            amount_fen=data.amount_fen,
            idempotency_key=data.idempotency_key,
            reason=data.reason,
            provider=services.payment_provider,
            policy=services.checkout_policy,
        )
        return Response(refund_out(refund), status_code=201 if created else 200)


class MyOrdersController(Controller):
    path = "/api/v1/me/orders"
    tags = ["Shopper"]
    dependencies = {"member": Provide(provide_current_member)}

    @get(operation_id="ListMyOrders")
    async def list_orders(
        self, member: NamedDependency[CurrentMember], limit: Limit = 20, cursor: Cursor = None
    ) -> OrdersPage:
        rows = await service.member_orders(member.id, limit=limit + 1, before_id=int(cursor) if cursor else None)
        items = [await order_out(row) for row in rows[:limit]]
        return OrdersPage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


class StorePaymentController(Controller):
    path = "/api/v1/stores/{store_id:int}/payments"
    tags = ["Shopper"]
    dependencies = {"member": Provide(provide_current_member)}

    @post(operation_id="PayAtStore")
    async def create(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        store_id: FromPath[int],
        data: JSONBody[StorePaymentCreate],
    ) -> StorePaymentOut:
        """The shopper scanned the store's code: a JSAPI order and the parameters for wx.requestPayment.

        The order is paid when WeChat Pay says so (a verified notification, or a query), never
        because the mini-program reports success.
        """
        order, params = await service.pay_at_store(
            store_id=store_id,
            member_id=member.id,
            amount_fen=data.amount_fen,
            points_to_redeem=data.points_to_redeem,
            provider=services.payment_provider,
            policy=services.checkout_policy,
        )
        return StorePaymentOut(
            order_id=order["id"],
            out_trade_no=order["out_trade_no"],
            status=order["status"],
            amount_fen=order["amount_fen"],
            paid_fen=order["paid_fen"],
            points_redeemed=order["points_redeemed"],
            pay_params=PayParams(
                app_id=params["appId"],
                time_stamp=params["timeStamp"],
                nonce_str=params["nonceStr"],
                package=params["package"],
                sign_type=params["signType"],
                pay_sign=params["paySign"],
            ),
        )
