from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from backend.cashier.controllers import refund_out
from backend.cashier.schemas import PayParams
from backend.core import openapi
from backend.core.auth import caller
from backend.core.idempotency import idempotency_key
from backend.core.paging import Cursor, Limit, PathId, before, query_id
from backend.core.responses import created
from backend.groupbuy import service as groupbuy
from backend.groupbuy.controllers import seat_out
from backend.groupbuy.schemas import PickupCreate, SeatOut
from backend.mall import service
from backend.mall.schemas import (
    MallOrderCreate,
    MallOrderPlaced,
    MallOrdersPage,
    MallRefundCreate,
    MallRefundOut,
    RefundLineOut,
)
from backend.mall.tables import MallStatus
from backend.members.auth import CurrentMember, ensure_active, provide_current_member
from backend.orders import service as orders
from backend.orders.controllers import order_out
from backend.orders.schemas import OrderOut
from backend.payments.refunds import RefundRecord
from backend.services import Services
from backend.stores.auth import CurrentStaff, provide_current_staff


async def mall_order_out(order_id: int, *, member_id: int | None = None) -> OrderOut:
    """An order as its member's order list shows it (the mall order's own fields beside), with its lines."""
    if member_id is None:
        order = await orders.find_order(order_id)
        assert order is not None and order.member is not None
        member_id = order.member
    view = await orders.member_order(member_id, order_id)
    assert view is not None
    return order_out(
        view.order, store_name=view.store_name, channel=view.channel, lines=await orders.order_lines(order_id)
    )


async def mall_refund_out(refund: RefundRecord) -> MallRefundOut:
    lines = [RefundLineOut(line_id=line, quantity=quantity) for line, quantity in await service.refund_lines(refund.id)]
    return MallRefundOut(**msgspec.structs.asdict(await refund_out(refund)), lines=lines)


class MyMallOrdersController(Controller):
    path = "/api/v1/me/mall-orders"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @post(
        operation_id="PlaceMallOrder", responses=openapi.replayed(MallOrderPlaced) | openapi.errors(404, 409, 502, 503)
    )
    async def place(
        self,
        services: NamedDependency[Services],
        request: Request,
        member: NamedDependency[CurrentMember],
        data: JSONBody[MallOrderCreate],
    ) -> Response[MallOrderPlaced]:
        """Place a mall order.

        Lines of SKUs the store sells now, at the server's prices, for `pickup` at the store or `delivery` to an
        address within the store's radius; optional `pointsToRedeem`. The stock of every line is taken with the
        order, all or nothing (409 `mall.out_of_stock` naming the SKU); the answer carries wx.requestPayment's
        parameters, and an order unpaid by `payBy` expires and gives its stock back. The same
        `idempotencyKey` again answers the same order (200)."""
        if request.headers.get("idempotency-key") is not None:
            idempotency_key(request.headers, data.idempotency_key)  # the same key both ways, or 422
        await ensure_active(member.id)
        placed = await service.place(
            member.id,
            data,
            pay_within=services.settings.mall_payment_window_seconds,
            redeem_points_per_yuan=services.checkout_policy.redeem_points_per_yuan,
            provider=services.payment_provider,
            policy=services.payment_policy,
        )
        if placed.channel is not None:  # a new order: shown as written, without reading it back
            shown = order_out(
                placed.order,
                store_name=placed.store_name,
                channel=placed.channel,
                lines=await orders.order_lines(placed.order.id),
            )
        else:
            shown = await mall_order_out(placed.order.id, member_id=member.id)
        answer = MallOrderPlaced(
            order=shown,
            pay_params=PayParams.of(placed.pay_params) if placed.pay_params else None,
            pay_by=placed.order.pay_by,
        )
        if not placed.created:
            return Response(answer, status_code=200)
        return created(answer, f"/api/v1/me/orders/{placed.order.id}")

    @post("/{order_id:int}/cancel", operation_id="CancelMallOrder", status_code=200, responses=openapi.errors(409))
    async def cancel(
        self, services: NamedDependency[Services], member: NamedDependency[CurrentMember], order_id: PathId
    ) -> OrderOut:
        """Cancel my mall order.

        Unpaid: closed (at WeChat Pay first), its stock and points back. Paid and not prepared yet: refunded in
        full. Once the store has prepared it, ask the store (409). Another member's order does not exist."""
        order = await service.cancel(
            order_id, member_id=member.id, provider=services.payment_provider, policy=services.payment_policy
        )
        return await mall_order_out(order.id, member_id=member.id)


class StoreMallOrdersController(Controller):
    path = "/api/v1/cashier/mall-orders"
    tags = ["Cashier"]
    dependencies = {"staff": caller(provide_current_staff)}

    @get(operation_id="ListStoreMallOrders")
    async def list_orders(
        self,
        staff: NamedDependency[CurrentStaff],
        store_id: Annotated[int, query_id("storeId")],
        status: Annotated[MallStatus | None, QueryParameter()] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> MallOrdersPage:
        """The store's mall orders to prepare.

        Paid orders and those ready for pickup (or those of one `status`), oldest first, each with its lines and
        a delivery's address: for staff of the store or HQ."""
        staff.ensure_store(store_id)
        statuses = (status,) if status is not None else service.TO_PREPARE
        ids = await service.store_orders(store_id, statuses=statuses, limit=limit + 1, before_id=before(cursor))
        items = [await mall_order_out(order_id) for order_id in ids[:limit]]
        return MallOrdersPage(items=items, next_cursor=str(ids[limit - 1]) if len(ids) > limit else None)

    @get("/{order_id:int}", operation_id="GetStoreMallOrder")
    async def get_order(self, staff: NamedDependency[CurrentStaff], order_id: PathId) -> OrderOut:
        """A mall order of the store.

        For staff of its store or HQ; any other does not exist."""
        await service.for_staff(order_id, staff.acts_for)
        return await mall_order_out(order_id)

    @post("/{order_id:int}/ready", operation_id="MarkMallOrderReady", status_code=200, responses=openapi.errors(409))
    async def ready(self, staff: NamedDependency[CurrentStaff], order_id: PathId) -> OrderOut:
        """Mark a mall order prepared.

        A paid order is ready: a pickup order gets its pickup code (single-use, at this store only), which the
        shopper shows at the till (`POST /api/v1/cashier/pickups`). The same again is the same."""
        await service.mark_ready(order_id, acts_for=staff.acts_for, staff_id=staff.id)
        return await mall_order_out(order_id)

    @post(
        "/{order_id:int}/delivered",
        operation_id="MarkMallOrderDelivered",
        status_code=200,
        responses=openapi.errors(409),
    )
    async def delivered(self, staff: NamedDependency[CurrentStaff], order_id: PathId) -> OrderOut:
        """Mark a delivery handed over.

        A delivery order, paid or ready, has reached the shopper. The same again is the same."""
        await service.mark_delivered(order_id, acts_for=staff.acts_for, staff_id=staff.id)
        return await mall_order_out(order_id)

    @post(
        "/{order_id:int}/refunds",
        operation_id="RefundMallOrder",
        responses=openapi.replayed(MallRefundOut) | openapi.errors(409, 502, 503),
    )
    async def refund(
        self,
        services: NamedDependency[Services],
        request: Request,
        staff: NamedDependency[CurrentStaff],
        order_id: PathId,
        data: JSONBody[MallRefundCreate],
    ) -> Response[MallRefundOut]:
        """Refund a mall order.

        Some units of some lines (`lines`), or without `lines` every unit not refunded yet: each unit's share of
        what the order paid goes back, and its points in proportion; units go back to stock only when the order
        was never handed over. Once per idempotency key; 200 with the same refund for a retry."""
        key = idempotency_key(request.headers, data.idempotency_key)
        refund, is_new = await service.refund(
            order_id,
            lines=data.lines,
            idempotency_key=key,
            reason=data.reason,
            staff_id=staff.id,
            acts_for=staff.acts_for,
            provider=services.payment_provider,
            policy=services.payment_policy,
        )
        answer = await mall_refund_out(refund)
        if not is_new:
            return Response(answer, status_code=200)
        return created(answer, f"{self.path}/{order_id}/refunds/{refund.id}")

    @get("/{order_id:int}/refunds/{refund_id:int}", operation_id="GetMallRefund")
    async def get_refund(
        self, staff: NamedDependency[CurrentStaff], order_id: PathId, refund_id: PathId
    ) -> MallRefundOut:
        """A refund of a mall order.

        Where the refund stands at WeChat Pay (its `Location` when it was asked for): for staff of the order's
        store or HQ; any other order, or a refund of another order, does not exist."""
        return await mall_refund_out(await service.refund_for_staff(order_id, refund_id, acts_for=staff.acts_for))


class PickupController(Controller):
    path = "/api/v1/cashier/pickups"
    tags = ["Cashier"]
    dependencies = {"staff": caller(provide_current_staff)}

    @post(operation_id="PickUpGroupBuyOrder", status_code=200, responses=openapi.errors(404, 409))
    async def pick_up(self, staff: NamedDependency[CurrentStaff], data: JSONBody[PickupCreate]) -> SeatOut | OrderOut:
        """Hand over a pickup.

        The shopper shows their pickup code at the till: a group-buy order (answered as its seat) or a mall
        order (answered as the order) is handed over, once, at its own store."""
        staff.ensure_store(data.store_id)
        order_id = await service.pick_up(store_id=data.store_id, pickup_code=data.pickup_code, staff_id=staff.id)
        if order_id is not None:
            return await mall_order_out(order_id)
        return seat_out(await groupbuy.pick_up(store_id=data.store_id, pickup_code=data.pickup_code, staff_id=staff.id))
