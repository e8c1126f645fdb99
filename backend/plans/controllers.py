from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from backend.cashier.schemas import PayParams
from backend.core import openapi
from backend.core.auth import caller
from backend.core.paging import Cursor, Limit, PathId, before
from backend.core.responses import created
from backend.members.auth import CurrentMember, ensure_active, provide_current_member
from backend.membership.standing import PlanRecord
from backend.orders import service as orders
from backend.orders.controllers import order_out
from backend.orders.service import OrderRecord
from backend.plans import service
from backend.plans.schemas import PlanCreate, PlanOut, PlansOut, PurchaseCreate, PurchaseOut, PurchasesPage
from backend.plans.service import PurchaseRecord
from backend.services import Services
from backend.stores import service as stores
from backend.stores.auth import CurrentStaff, provide_hq_admin


def plan_out(plan: PlanRecord) -> PlanOut:
    return PlanOut(
        id=plan.id,
        code=plan.code,
        title=plan.title,
        price_fen=plan.price_fen,
        days=plan.days,
        points_multiplier_percent=plan.points_multiplier_percent,
        member_price=plan.member_price,
        monthly_coupon_template_ids=list(plan.coupon_template_ids),
        on_sale=plan.on_sale,
        created_at=plan.created_at,
    )


async def purchase_out(
    order: OrderRecord, purchase: PurchaseRecord, pay_params: dict[str, str] | None = None
) -> PurchaseOut:
    store = await stores.recent_store(order.store)
    return PurchaseOut(
        order=order_out(order, store_name=store.name if store else "", lines=await orders.order_lines(order.id)),
        pay_params=PayParams.of(pay_params) if pay_params else None,
        plan_id=purchase.plan,
        status=purchase.status.value,
        period_from=purchase.period_from,
        period_until=purchase.period_until,
    )


class AdminPlanController(Controller):
    path = "/api/v1/admin/membership-plans"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @post(operation_id="CreateMembershipPlan", responses=openapi.errors(409, 422))
    async def create_plan(self, staff: NamedDependency[CurrentStaff], data: JSONBody[PlanCreate]) -> Response[PlanOut]:
        """Create a paid membership plan.

        Its price, how many days it lasts, the points multiplier it gives (the higher of it and the tier's applies),
        whether the mall's member prices apply, and the coupon templates issued at purchase and on the same day of
        each following month while it lasts. A `code` is once (409)."""
        plan = await service.create_plan(data, staff_id=staff.id)
        return created(plan_out(plan), "/api/v1/membership-plans")

    @get(operation_id="ListAllMembershipPlans")
    async def list_plans(self, staff: NamedDependency[CurrentStaff]) -> PlansOut:
        """List every membership plan.

        Every paid membership plan HQ has made, on sale or not, oldest first."""
        return PlansOut(items=[plan_out(plan) for plan in await service.all_plans()])


class PlanController(Controller):
    path = "/api/v1/membership-plans"
    tags = ["Shopper"]

    @get(operation_id="ListMembershipPlans")
    async def on_sale(self) -> PlansOut:
        """List the membership plans on sale.

        The paid membership plans a shopper may buy now, with their price, days and benefits (no token needed)."""
        return PlansOut(items=[plan_out(plan) for plan in await service.plans_on_sale()])


class MyPurchasesController(Controller):
    path = "/api/v1/me/memberships"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @post(operation_id="BuyMembership", responses=openapi.replayed(PurchaseOut) | openapi.errors(404, 409, 502, 503))
    async def buy(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        data: JSONBody[PurchaseCreate],
    ) -> Response[PurchaseOut]:
        """Buy a paid membership.

        An order of kind `membership` for the plan, paid by JSAPI (the answer carries wx.requestPayment's
        parameters). Once paid, the membership starts, or extends from its end while one is active. It is sold at
        `storeId` (default: the store I enrolled at; 422 `membership.store_required` when there is none). The same
        `idempotencyKey` again answers the same purchase (200)."""
        await ensure_active(member.id)
        bought = await service.buy(
            member.id,
            data,
            pay_within=services.payment_policy.jsapi_pay_within,
            provider=services.payment_provider,
            policy=services.payment_policy,
        )
        answer = await purchase_out(bought.order, bought.purchase, bought.pay_params)
        if not bought.created:
            return Response(answer, status_code=200)
        return created(answer, f"/api/v1/me/memberships/{bought.order.id}")

    @get(operation_id="ListMyMemberships")
    async def mine(
        self, member: NamedDependency[CurrentMember], limit: Limit = 20, cursor: Cursor = None
    ) -> PurchasesPage:
        """List my membership purchases.

        Every purchase of a paid plan I made, newest first, each with its order and the days it added."""
        ids = await service.member_purchases(member.id, limit=limit, before_id=before(cursor))
        items = [await purchase_out(*await service.member_purchase(order_id, member.id)) for order_id in ids]
        return PurchasesPage(items=items, next_cursor=str(ids[-1]) if len(ids) == limit else None)

    @get("/{order_id:int}", operation_id="GetMyMembershipPurchase")
    async def one(self, member: NamedDependency[CurrentMember], order_id: PathId) -> PurchaseOut:
        """Get one of my membership purchases.

        The purchase with its order and the days it added; another member's does not exist (404)."""
        return await purchase_out(*await service.member_purchase(order_id, member.id))

    @post(
        "/{order_id:int}/cancel",
        operation_id="CancelMyMembership",
        status_code=200,
        responses=openapi.errors(404, 409, 502),
    )
    async def cancel(
        self, services: NamedDependency[Services], member: NamedDependency[CurrentMember], order_id: PathId
    ) -> PurchaseOut:
        """Cancel a membership purchase.

        Unpaid: closed. Paid: refunded in full within 7 days of its payment when none of its benefits was used (no
        mall order at member prices since, none of its coupons used); its days come off the membership and its
        unused coupons are withdrawn. Otherwise 409 `membership.not_refundable` with the reason (`too_late`,
        `member_price_used`, `coupon_used`)."""
        await service.cancel(
            order_id, member_id=member.id, provider=services.payment_provider, policy=services.payment_policy
        )
        return await purchase_out(*await service.member_purchase(order_id, member.id))
