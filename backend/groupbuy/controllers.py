from typing import Annotated, Any, Literal

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from backend.cashier.schemas import PayParams
from backend.core.errors import error_body
from backend.core.paging import Cursor, Limit
from backend.core.schema import Page
from backend.groupbuy import service
from backend.groupbuy.errors import SoldOut
from backend.groupbuy.schemas import (
    CampaignCreate,
    CampaignOut,
    DemandOut,
    DemandRow,
    DemandTotals,
    GroupMemberOut,
    GroupOut,
    PickupCreate,
    SeatCreate,
    SeatOut,
    SeatRefundCreate,
    SeatRefundOut,
    SeatTaken,
)
from backend.members.auth import CurrentMember, ensure_active, provide_current_member, provide_signed_member
from backend.services import Services
from backend.stores.auth import CurrentStaff, provide_current_staff, provide_hq_admin
from backend.stores.controllers import store_out


def campaign_out(row: dict[str, Any]) -> CampaignOut:
    return CampaignOut(
        id=row["id"],
        title=row["title"],
        product_name=row["product_name"],
        product_image=row["product_image"],
        price_fen=row["price_fen"],
        original_price_fen=row["original_price_fen"],
        group_size=row["group_size"],
        group_ttl_minutes=row["group_ttl_minutes"],
        payment_window_minutes=row["payment_window_minutes"],
        stock=row["stock"],
        stock_left=row["stock_left"],
        per_member_limit=row["per_member_limit"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        pickup_date=row["pickup_date"],
        pickup_stores=[store_out(store) for store in row["pickup_stores"]],
        virtual_fill=row["virtual_fill"],
        virtual_fill_percent=row["virtual_fill_percent"],
        created_at=row["created_at"],
    )


def group_out(row: dict[str, Any]) -> GroupOut:
    return GroupOut(
        id=row["id"],
        campaign_id=row["campaign"],
        status=row["status"],
        group_size=row["group_size"],
        seats_taken=row["seats_taken"],
        seats_left=row["group_size"] - row["seats_taken"],
        seats_paid=row["seats_paid"],
        virtual_seats=row["virtual_seats"],
        expires_at=row["expires_at"],
        members=[
            GroupMemberOut(nickname=m["nickname"], avatar_url=m["avatar_url"], virtual=m["virtual"])
            for m in row["members"]
        ],
    )


def seat_out(row: dict[str, Any], pay_params: dict[str, str] | None = None) -> SeatOut:
    params = None
    if pay_params:
        params = PayParams(
            app_id=pay_params["appId"],
            time_stamp=pay_params["timeStamp"],
            nonce_str=pay_params["nonceStr"],
            package=pay_params["package"],
            sign_type=pay_params["signType"],
            pay_sign=pay_params["paySign"],
        )
    return SeatOut(
        id=row["id"],
        group_id=row["group"],
        campaign_id=row["campaign"],
        pickup_store_id=row["pickup_store"],
        quantity=row["quantity"],
        amount_fen=row["amount_fen"],
        status=row["status"],
        pay_by=row["pay_by"],
        out_trade_no=row["out_trade_no"],
        created_at=row["created_at"],
        group_status=row["group_status"],
        group_virtual_seats=row["group_virtual_seats"],
        pickup_code=row["pickup_code"],
        picked_up_at=row["picked_up_at"],
        pay_params=params,
    )


class GroupBuyController(Controller):
    path = "/api/v1/groupbuy"
    tags = ["Group-buy"]

    @get("/campaigns", operation_id="ListGroupBuyCampaigns")
    async def list_campaigns(self) -> list[CampaignOut]:
        """Campaigns open now, ending soonest first."""
        return [campaign_out(row) for row in await service.open_campaigns()]

    @get("/campaigns/{campaign_id:int}", operation_id="GetGroupBuyCampaign")
    async def get_campaign(self, campaign_id: FromPath[int]) -> CampaignOut:
        return campaign_out(await service.get_campaign(campaign_id))

    @get("/groups/{group_id:int}", operation_id="GetGroupBuyGroup")
    async def get_group(self, group_id: FromPath[int]) -> GroupOut:
        """Seats and deadline of a group, for the page a shared link opens; members by nickname only."""
        return group_out(await service.get_group(group_id))


def sold_out(error: SoldOut) -> Response[Any]:
    """The answer most requests of a flash sale get: returned, not raised through the exception middleware,
    which would cost the hot path a good share of its speed. The same body and status as any domain error."""
    return Response(error_body(error.code, error.message, error.details), status_code=error.status_code)


class GroupBuySeatController(Controller):
    path = "/api/v1/groupbuy"
    tags = ["Group-buy"]
    # The member's account is checked by take_seat once the stock gate has let the request through.
    dependencies = {"member": Provide(provide_signed_member)}

    @post("/campaigns/{campaign_id:int}/groups", operation_id="OpenGroupBuyGroup")
    async def open_group(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        campaign_id: FromPath[int],
        data: JSONBody[SeatCreate],
    ) -> Response[SeatTaken]:
        """Open a group as its leader, taking its first seat."""
        try:
            group, seat, params = await service.take_seat(
                member_id=member.id,
                campaign_id=campaign_id,
                pickup_store_id=data.pickup_store_id,
                quantity=data.quantity,
                provider=services.payment_provider,
                policy=services.checkout_policy,
                kv=services.kv,
                ensure_active=ensure_active,
            )
        except SoldOut as error:
            return sold_out(error)
        return Response(SeatTaken(group=group_out(group), order=seat_out(seat, params)), status_code=201)

    @post("/groups/{group_id:int}/orders", operation_id="JoinGroupBuyGroup")
    async def join_group(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        group_id: FromPath[int],
        data: JSONBody[SeatCreate],
    ) -> Response[SeatTaken]:
        """Take a seat in someone's group."""
        try:
            group, seat, params = await service.take_seat(
                member_id=member.id,
                group_id=group_id,
                pickup_store_id=data.pickup_store_id,
                quantity=data.quantity,
                provider=services.payment_provider,
                policy=services.checkout_policy,
                kv=services.kv,
                ensure_active=ensure_active,
            )
        except SoldOut as error:
            return sold_out(error)
        return Response(SeatTaken(group=group_out(group), order=seat_out(seat, params)), status_code=201)


class MyGroupBuyController(Controller):
    path = "/api/v1/me/groupbuy"
    tags = ["Group-buy"]
    dependencies = {"member": Provide(provide_current_member)}

    @get("/orders", operation_id="ListMyGroupBuyOrders")
    async def my_orders(
        self, member: NamedDependency[CurrentMember], limit: Limit = 20, cursor: Cursor = None
    ) -> Page[SeatOut]:
        """The member's group-buy orders, newest first, with their pickup codes once their group succeeded."""
        rows = await service.member_seats(member.id, limit=limit + 1, before_id=int(cursor) if cursor else None)
        items = [seat_out(row) for row in rows[:limit]]
        return Page(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


class AdminGroupBuyController(Controller):
    path = "/api/v1/admin/groupbuy"
    tags = ["HQ"]
    dependencies = {"staff": Provide(provide_hq_admin)}

    @get("/campaigns/{campaign_id:int}/demand", operation_id="GetGroupBuyDemand")
    async def get_demand(
        self,
        staff: NamedDependency[CurrentStaff],
        campaign_id: FromPath[int],
        format_: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
    ) -> Response[DemandOut] | Response[bytes]:
        """Units per pickup store and date, before ordering from the supplier; `?format=csv` for a spreadsheet."""
        report = await service.demand(campaign_id)
        if format_ == "csv":
            return Response(
                service.demand_csv(report),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="groupbuy-{campaign_id}-demand.csv"'},
            )
        return Response(
            DemandOut(
                campaign_id=report["campaign_id"],
                product_name=report["product_name"],
                pickup_date=report["pickup_date"],
                rows=[DemandRow(**row) for row in report["rows"]],
                totals=DemandTotals(**report["totals"]),
            )
        )

    @post("/campaigns", operation_id="CreateGroupBuyCampaign")
    async def create_campaign(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[CampaignCreate]
    ) -> CampaignOut:
        return campaign_out(await service.create_campaign(data, staff_id=staff.id))


def seat_refund_out(row: dict[str, Any]) -> SeatRefundOut:
    return SeatRefundOut(
        refund_id=row["id"],
        order_id=row["seat"],
        out_refund_no=row["out_refund_no"],
        amount_fen=row["amount_fen"],
        reason=row["reason"],
        status=row["status"],
        created_at=row["created_at"],
        settled_at=row["settled_at"],
    )


class CashierGroupBuyController(Controller):
    path = "/api/v1/cashier/groupbuy/orders"
    tags = ["Cashier"]
    dependencies = {"staff": Provide(provide_current_staff)}

    @post("/{order_id:int}/refunds", operation_id="RefundGroupBuyOrder")
    async def refund(
        self,
        services: NamedDependency[Services],
        staff: NamedDependency[CurrentStaff],
        order_id: FromPath[int],
        data: JSONBody[SeatRefundCreate],
    ) -> Response[SeatRefundOut]:
        """Refund a whole order of a group that succeeded, picked up or not: 201, or 200 with the same refund
        when asked again. Staff of its pickup store or HQ; the group stays succeeded."""
        refund, created = await service.refund_order(
            order_id, staff=staff, note=data.reason, provider=services.payment_provider, policy=services.checkout_policy
        )
        return Response(seat_refund_out(refund), status_code=201 if created else 200)


class PickupController(Controller):
    path = "/api/v1/cashier/pickups"
    tags = ["Cashier"]
    dependencies = {"staff": Provide(provide_current_staff)}

    @post(operation_id="PickUpGroupBuyOrder", status_code=200)
    async def pick_up(self, staff: NamedDependency[CurrentStaff], data: JSONBody[PickupCreate]) -> SeatOut:
        """The shopper shows their pickup code at the till: the order is handed over, once, at its own store."""
        staff.ensure_store(data.store_id)
        return seat_out(await service.pick_up(store_id=data.store_id, pickup_code=data.pickup_code, staff_id=staff.id))
