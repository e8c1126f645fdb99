import time

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from backend.cashier import service
from backend.cashier.errors import OrderNotFound
from backend.cashier.schemas import (
    PayParams,
    RefundCreate,
    RefundOut,
    StorePaymentCreate,
    StorePaymentOut,
    TillOrderCreate,
)
from backend.core import openapi
from backend.core.auth import caller
from backend.core.errors import DomainError
from backend.core.idempotency import idempotency_key
from backend.core.paging import PathId
from backend.core.ratelimit import client_address
from backend.core.responses import created
from backend.members import service as members
from backend.members.auth import CurrentMember, provide_current_member
from backend.orders import service as orders
from backend.orders.controllers import landing_for, order_out
from backend.orders.schemas import OrderOut
from backend.orders.service import OrderRecord
from backend.payments import refunds
from backend.payments.refunds import RefundRecord
from backend.points import service as points
from backend.points.effects import refund_key
from backend.services import Services
from backend.stores import service as stores
from backend.stores.auth import CurrentStaff, provide_current_staff


async def till_order_out(order: OrderRecord) -> OrderOut:
    store = await stores.recent_store(order.store)
    assert store is not None
    return order_out(order, store_name=store.name, landing=landing_for(order, store))


async def refund_out(refund: RefundRecord) -> RefundOut:
    taken, given = await points.reversed_under(refund_key(refund.order, refund.id))
    return RefundOut(
        refund_id=refund.id,
        order_id=refund.order,
        out_refund_no=refund.out_refund_no,
        amount_fen=refund.amount_fen,
        status=refund.status,
        points_reversed=taken,
        points_restored=given,
        created_at=refund.created_at,
        settled_at=refund.settled_at,
    )


async def _store_order(staff: CurrentStaff, order_id: int) -> OrderRecord:
    """The till's order, if it is one of the stores this staff member acts for; another store's does not exist."""
    order = await service.get_order(order_id)
    if order is None or not staff.acts_for(order.store):
        raise OrderNotFound(order_id=order_id)
    return order


class CashierOrderController(Controller):
    path = "/api/v1/cashier/orders"
    tags = ["Cashier"]
    dependencies = {"staff": caller(provide_current_staff)}

    @post(operation_id="CreateTillOrder", responses=openapi.replayed(OrderOut) | openapi.errors(404, 502, 503))
    async def create(
        self,
        services: NamedDependency[Services],
        request: Request,
        staff: NamedDependency[CurrentStaff],
        data: JSONBody[TillOrderCreate],
    ) -> Response[OrderOut]:
        """Till checkout with a payment code.

        The till scans the shopper's payment code: the order is paid at once or within the inline wait (a
        password), and the payer leaves as a member earning points. Once per idempotency key (body `idempotencyKey` or
        an `Idempotency-Key` header): a retry answers 200 with the first order. A member code (`memberCode`) names the
        member; `pointsToRedeem` takes points off.
        """
        staff.ensure_store(data.store_id)
        key = idempotency_key(request.headers, data.idempotency_key)
        replayed = {
            "amount_fen": data.amount_fen,
            "auth_code": data.auth_code,
            "member_code": data.member_code,
            "points_to_redeem": data.points_to_redeem,
        }
        if data.coupon_id is not None:  # only then: a retry of an order placed before coupons hashes as it did
            replayed["coupon_id"] = data.coupon_id
        member_id, taken = None, None
        if data.member_code:
            # A retry is answered before the member code is looked at: the first request spent it. Without a
            # code, the order's unique key answers a retry inside `checkout`.
            replay = await service.replayed_order(data.store_id, key, replayed, services.checkout_policy)
            if replay is not None:
                return Response(await till_order_out(replay), status_code=200)
            taken = await members.take_member_code(
                data.member_code,
                codes=services.member_codes,
                kv=services.kv,
                till=members.Till(staff.id, data.store_id, data.till_id or client_address(request.scope)),
                now=time.time(),
                failure_limit=services.settings.member_lookup_failure_limit,
                window=services.settings.member_lookup_failure_window_seconds,
            )
            member_id = taken.member_id
        try:
            order, is_new = await service.checkout(
                store_id=data.store_id,
                staff_id=staff.id,
                amount_fen=data.amount_fen,
                auth_code=data.auth_code,
                idempotency_key=key,
                request=replayed,
                member_id=member_id,
                points_to_redeem=data.points_to_redeem,
                provider=services.payment_provider,
                payment_policy=services.payment_policy,
                policy=services.checkout_policy,
                coupon_id=data.coupon_id,
                scene=data.scene or "",
            )
        except DomainError:
            # Refused before an order was placed: the code did nothing, and the till's retry may use it.
            if taken is not None and await orders.find_by_key(data.store_id, key) is None:
                await members.give_back_member_code(taken, kv=services.kv, now=time.time())
            raise
        answer = await till_order_out(order)
        return created(answer, f"{self.path}/{order.id}") if is_new else Response(answer, status_code=200)

    @get("/{order_id:int}", operation_id="GetTillOrder")
    async def get_order(self, staff: NamedDependency[CurrentStaff], order_id: PathId) -> OrderOut:
        """A till or store-code order.

        A till or store-code order of a store this staff account acts for."""
        return await till_order_out(await _store_order(staff, order_id))

    @post("/{order_id:int}/cancel", operation_id="CancelTillOrder", status_code=200, responses=openapi.errors(502, 503))
    async def cancel(
        self,
        services: NamedDependency[Services],
        staff: NamedDependency[CurrentStaff],
        order_id: PathId,
    ) -> OrderOut:
        """Cancel a till payment.

        The cashier gives up on a payment still under way: asked once more at WeChat Pay, then reversed, unless it
        was paid after all (then the order answers paid).
        """
        await _store_order(staff, order_id)
        order = await service.cancel(
            order_id, provider=services.payment_provider, payment_policy=services.payment_policy
        )
        return await till_order_out(order)

    @post(
        "/{order_id:int}/refunds",
        operation_id="RefundTillOrder",
        responses=openapi.replayed(RefundOut) | openapi.errors(502, 503),
    )
    async def refund(
        self,
        services: NamedDependency[Services],
        request: Request,
        staff: NamedDependency[CurrentStaff],
        order_id: PathId,
        data: JSONBody[RefundCreate],
    ) -> Response[RefundOut]:
        """Refund a till or store-code order.

        Part or all of a paid order, once per idempotency key; 200 with the same refund for a retry."""
        key = idempotency_key(request.headers, data.idempotency_key)
        order = await _store_order(staff, order_id)
        refund, is_new = await refunds.request_refund(
            order,
            amount_fen=data.amount_fen,
            idempotency_key=key,
            reason=data.reason,
            staff_id=staff.id,
            provider=services.payment_provider,
            policy=services.payment_policy,
        )
        answer = await refund_out(refund)
        location = f"{self.path}/{order.id}/refunds/{refund.id}"
        return created(answer, location) if is_new else Response(answer, status_code=200)

    @get("/{order_id:int}/refunds/{refund_id:int}", operation_id="GetTillRefund")
    async def get_refund(self, staff: NamedDependency[CurrentStaff], order_id: PathId, refund_id: PathId) -> RefundOut:
        """A refund of a till or store-code order.

        Where a refund stands: `processing` until WeChat Pay settles it, then `succeeded` or `failed` (its
        `Location` when it was asked for). An order of a store this staff account does not act for, or a refund
        of another order, does not exist."""
        order = await _store_order(staff, order_id)
        return await refund_out(await refunds.refund_of(order.id, refund_id))


class StorePaymentController(Controller):
    path = "/api/v1/stores/{store_id:int}/payments"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @post(operation_id="PayAtStore", responses=openapi.errors(502, 503))
    async def create(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        store_id: PathId,
        data: JSONBody[StorePaymentCreate],
    ) -> Response[StorePaymentOut]:
        """Pay at a store by its code.

        The shopper scanned the store's code: a JSAPI order and the parameters for wx.requestPayment.

        The order is paid when WeChat Pay says so (a verified notification, or a query), never
        because the mini-program reports success.
        """
        order, params = await service.pay_at_store(
            store_id=store_id,
            member_id=member.id,
            amount_fen=data.amount_fen,
            points_to_redeem=data.points_to_redeem,
            provider=services.payment_provider,
            payment_policy=services.payment_policy,
            policy=services.checkout_policy,
            coupon_id=data.coupon_id,
        )
        answer = StorePaymentOut(
            order_id=order.id,
            out_trade_no=order.out_trade_no,
            status=order.status,
            amount_fen=order.amount_fen,
            payable_fen=order.payable_fen,
            paid_fen=order.paid_fen,
            points_redeemed=order.points_redeemed,
            pay_by=order.pay_by,
            pay_params=PayParams.of(params),
        )
        return created(answer, f"/api/v1/me/orders/{order.id}")
