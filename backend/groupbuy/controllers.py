from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import JSONBody, QueryParameter

from backend.cashier.schemas import PayParams
from backend.core import openapi, spreadsheet
from backend.core.auth import caller
from backend.core.errors import error_body
from backend.core.paging import Cursor, Limit, PathId, TimeCursor, after_time, before, time_cursor
from backend.core.responses import created
from backend.groupbuy import service
from backend.groupbuy.errors import SoldOut
from backend.groupbuy.schemas import (
    AdminCampaignOut,
    AdminCampaignsPage,
    CampaignCountsOut,
    CampaignCreate,
    CampaignOut,
    CampaignPatch,
    DemandOut,
    DemandRow,
    DemandTotals,
    GroupMemberOut,
    GroupOut,
    GroupsPage,
    SeatCreate,
    SeatOut,
    SeatRefundCreate,
    SeatRefundOut,
    SeatsPage,
    SeatTaken,
)
from backend.groupbuy.service import CampaignCounts, CampaignRecord, GroupView, SeatView
from backend.members.auth import CurrentMember, ensure_active, provide_current_member, provide_signed_member
from backend.payments.refunds import RefundRecord
from backend.services import Services
from backend.stores.auth import CurrentStaff, provide_current_staff, provide_hq_admin
from backend.stores.controllers import store_out


def campaign_out(campaign: CampaignRecord) -> CampaignOut:
    return CampaignOut(
        id=campaign.id,
        title=campaign.title,
        product_name=campaign.product_name,
        product_image=campaign.product_image,
        sku_id=campaign.sku,
        price_fen=campaign.price_fen,
        original_price_fen=campaign.original_price_fen,
        group_size=campaign.group_size,
        group_ttl_minutes=campaign.group_ttl_minutes,
        payment_window_minutes=campaign.payment_window_minutes,
        stock=campaign.stock,
        stock_left=campaign.stock_left,
        per_member_limit=campaign.per_member_limit,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        pickup_date=campaign.pickup_date,
        pickup_stores=[store_out(store) for store in campaign.pickup_stores],
        virtual_fill=campaign.virtual_fill,
        virtual_fill_percent=campaign.virtual_fill_percent,
        created_at=campaign.created_at,
        closed_at=campaign.closed_at,
    )


def admin_campaign_out(campaign: CampaignRecord, counts: CampaignCounts) -> AdminCampaignOut:
    shown = CampaignCountsOut(**{name: getattr(counts, name) for name in CampaignCounts.__slots__})
    return AdminCampaignOut(**msgspec.structs.asdict(campaign_out(campaign)), counts=shown)


def group_out(group: GroupView) -> GroupOut:
    return GroupOut(
        id=group.id,
        campaign_id=group.campaign,
        status=group.status,
        group_size=group.group_size,
        seats_taken=group.seats_taken,
        seats_left=group.seats_left,
        seats_paid=group.seats_paid,
        virtual_seats=group.virtual_seats,
        expires_at=group.expires_at,
        members=[
            GroupMemberOut(nickname=m.nickname, avatar_url=m.avatar_url, virtual=m.virtual) for m in group.members
        ],
    )


def seat_out(seat: SeatView, pay_params: dict[str, str] | None = None) -> SeatOut:
    return SeatOut(
        id=seat.order_id,
        group_id=seat.group_id,
        campaign_id=seat.campaign_id,
        pickup_store_id=seat.pickup_store_id,
        quantity=seat.quantity,
        amount_fen=seat.amount_fen,
        status=seat.status,
        payment_status=seat.order_status,
        paid_fen=seat.paid_fen,
        refunded_fen=seat.refunded_fen,
        pay_by=seat.pay_by,
        out_trade_no=seat.out_trade_no,
        created_at=seat.created_at,
        group_status=seat.group_status,
        group_virtual_seats=seat.group_virtual_seats,
        pickup_code=seat.pickup_code,
        picked_up_at=seat.picked_up_at,
        pay_params=PayParams.of(pay_params) if pay_params else None,
    )


class GroupBuyController(Controller):
    path = "/api/v1/groupbuy"
    tags = ["Group-buy"]

    @get("/campaigns", operation_id="ListGroupBuyCampaigns")
    async def list_campaigns(self) -> list[CampaignOut]:
        """Open group-buy campaigns.

        Campaigns open now, ending soonest first."""
        return [campaign_out(row) for row in await service.open_campaigns()]

    @get("/campaigns/{campaign_id:int}", operation_id="GetGroupBuyCampaign")
    async def get_campaign(self, campaign_id: PathId) -> CampaignOut:
        """A group-buy campaign.

        A group-buy campaign: product, prices, group size, stock left and pickup stores (no token needed)."""
        return campaign_out(await service.get_campaign(campaign_id))

    @get("/groups/{group_id:int}", operation_id="GetGroupBuyGroup")
    async def get_group(self, group_id: PathId) -> GroupOut:
        """A group and its seats.

        Seats and deadline of a group, for the page a shared link opens; members by nickname only."""
        return group_out(await service.get_group(group_id))


def sold_out(error: SoldOut) -> Response[Any]:
    """The answer most requests of a flash sale get: returned, not raised through the exception middleware,
    which would cost the hot path a good share of its speed. The same body and status as any domain error."""
    return Response(error_body(error.code, error.message, error.details), status_code=error.status_code)


class GroupBuySeatController(Controller):
    path = "/api/v1/groupbuy"
    tags = ["Group-buy"]
    # The member's account is checked by take_seat once the stock gate has let the request through.
    dependencies = {"member": caller(provide_signed_member)}

    @get("/campaigns/{campaign_id:int}/groups", operation_id="ListFormingGroups")
    async def list_groups(self, campaign_id: PathId, limit: Limit = 20, cursor: TimeCursor = None) -> GroupsPage:
        """Groups still forming.

        Groups of the campaign still forming that a shopper may join, soonest deadline first (no sign-in)."""
        await service.get_campaign(campaign_id)
        groups = await service.forming_groups(campaign_id, limit=limit + 1, after=after_time(cursor))
        items = groups[:limit]
        return GroupsPage(
            items=[group_out(group) for group in items],
            next_cursor=time_cursor(items[-1].expires_at, items[-1].id) if len(groups) > limit else None,
        )

    @post("/campaigns/{campaign_id:int}/groups", operation_id="OpenGroupBuyGroup", responses=openapi.errors(502, 503))
    async def open_group(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        campaign_id: PathId,
        data: JSONBody[SeatCreate],
    ) -> Response[SeatTaken]:
        """Open a group.

        Open a group as its leader, taking its first seat."""
        try:
            group, seat, params = await service.take_seat(
                member_id=member.id,
                campaign_id=campaign_id,
                pickup_store_id=data.pickup_store_id,
                quantity=data.quantity,
                coupon_id=data.coupon_id,
                provider=services.payment_provider,
                policy=services.payment_policy,
                kv=services.kv,
                ensure_active=ensure_active,
            )
        except SoldOut as error:
            return sold_out(error)
        return created(
            SeatTaken(group=group_out(group), order=seat_out(seat, params)), f"/api/v1/me/orders/{seat.order_id}"
        )

    @post("/groups/{group_id:int}/orders", operation_id="JoinGroupBuyGroup", responses=openapi.errors(502, 503))
    async def join_group(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        group_id: PathId,
        data: JSONBody[SeatCreate],
    ) -> Response[SeatTaken]:
        """Join a group.

        Take a seat in someone's group."""
        try:
            group, seat, params = await service.take_seat(
                member_id=member.id,
                group_id=group_id,
                pickup_store_id=data.pickup_store_id,
                quantity=data.quantity,
                coupon_id=data.coupon_id,
                provider=services.payment_provider,
                policy=services.payment_policy,
                kv=services.kv,
                ensure_active=ensure_active,
            )
        except SoldOut as error:
            return sold_out(error)
        return created(
            SeatTaken(group=group_out(group), order=seat_out(seat, params)), f"/api/v1/me/orders/{seat.order_id}"
        )


class MyGroupBuyController(Controller):
    path = "/api/v1/me/groupbuy"
    tags = ["Group-buy"]
    dependencies = {"member": caller(provide_current_member)}

    @get("/orders", operation_id="ListMyGroupBuyOrders")
    async def my_orders(
        self, member: NamedDependency[CurrentMember], limit: Limit = 20, cursor: Cursor = None
    ) -> SeatsPage:
        """My group-buy orders.

        The member's group-buy orders, newest first, with their pickup codes once their group succeeded."""
        seats = await service.member_seats(member.id, limit=limit + 1, before_order=before(cursor))
        items = [seat_out(seat) for seat in seats[:limit]]
        return SeatsPage(items=items, next_cursor=str(items[-1].id) if len(seats) > limit else None)

    @post(
        "/orders/{order_id:int}/cancel",
        operation_id="GiveBackMyGroupBuySeat",
        status_code=200,
        responses=openapi.errors(502, 503),
    )
    async def give_back(
        self, services: NamedDependency[Services], member: NamedDependency[CurrentMember], order_id: PathId
    ) -> SeatOut:
        """Give an unpaid seat back.

        Give an unpaid seat back at once: closed at WeChat Pay first, then the seat, the units and the
        stock go back. A paid seat is not given back here (its group refunds it if it fails)."""
        return seat_out(
            await service.give_back_seat(
                order_id, member_id=member.id, provider=services.payment_provider, policy=services.payment_policy
            )
        )


class AdminGroupBuyController(Controller):
    path = "/api/v1/admin/groupbuy"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @get(
        "/campaigns/{campaign_id:int}/demand",
        operation_id="GetGroupBuyDemand",
        operation_class=openapi.operation_with(answers=("text/csv",), answers_schema=Schema(type=OpenAPIType.STRING)),
    )
    async def get_demand(
        self,
        staff: NamedDependency[CurrentStaff],
        campaign_id: PathId,
        format_: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
    ) -> Response[DemandOut]:  # or the CSV's bytes, documented beside it
        """Group-buy demand by store and date.

        Units per pickup store and date, before ordering from the supplier; `?format=csv` for a spreadsheet."""
        report = await service.demand(campaign_id)
        if format_ == "csv":
            return Response(
                service.demand_csv(report),
                media_type=spreadsheet.MEDIA_TYPE,
                headers=spreadsheet.attachment(f"groupbuy-{campaign_id}-demand.csv"),
            )
        return Response(
            DemandOut(
                campaign_id=report.campaign_id,
                product_name=report.product_name,
                pickup_date=report.pickup_date,
                rows=[
                    DemandRow(
                        store_id=row.store_id,
                        store_code=row.store_code,
                        store_name=row.store_name,
                        pickup_date=row.pickup_date,
                        firm_units=row.firm_units,
                        tentative_units=row.tentative_units,
                        picked_up_units=row.picked_up_units,
                        virtual_seats=row.virtual_seats,
                    )
                    for row in report.rows
                ],
                totals=DemandTotals(
                    firm_units=report.totals.firm_units,
                    tentative_units=report.totals.tentative_units,
                    picked_up_units=report.totals.picked_up_units,
                    virtual_seats=report.totals.virtual_seats,
                ),
            )
        )

    @get("/campaigns", operation_id="ListAllGroupBuyCampaigns")
    async def list_campaigns(
        self, staff: NamedDependency[CurrentStaff], limit: Limit = 20, cursor: Cursor = None
    ) -> AdminCampaignsPage:
        """Every group-buy campaign with its counts.

        Running, ended or closed, newest first, each with its groups by status and the seats and units sold."""
        rows = await service.list_campaigns(before_id=before(cursor), limit=limit)
        counts = await service.campaign_counts([row.id for row in rows])
        return AdminCampaignsPage(
            items=[admin_campaign_out(row, counts[row.id]) for row in rows],
            next_cursor=str(rows[-1].id) if len(rows) == limit else None,
        )

    @patch("/campaigns/{campaign_id:int}", operation_id="UpdateGroupBuyCampaign", responses=openapi.errors(404, 409))
    async def update_campaign(
        self, staff: NamedDependency[CurrentStaff], campaign_id: PathId, data: JSONBody[CampaignPatch]
    ) -> AdminCampaignOut:
        """Edit or close a group-buy campaign.

        Renames it, moves its end later, or closes it early (`closed: true`): it opens no new groups from then
        (409 `groupbuy.campaign_closed`), and the groups already forming run to their deadlines, filling or
        failing and refunding as ever. `closed: false` opens it again."""
        campaign = await service.update_campaign(campaign_id, data)
        return admin_campaign_out(campaign, (await service.campaign_counts([campaign.id]))[campaign.id])

    @post("/campaigns", operation_id="CreateGroupBuyCampaign")
    async def create_campaign(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[CampaignCreate]
    ) -> Response[CampaignOut]:
        """Create a group-buy campaign.

        HQ creates a group-buy presale; `Location` is its page."""
        campaign = campaign_out(await service.create_campaign(data, staff_id=staff.id))
        return created(campaign, f"/api/v1/groupbuy/campaigns/{campaign.id}")


def seat_refund_out(refund: RefundRecord) -> SeatRefundOut:
    return SeatRefundOut(
        refund_id=refund.id,
        order_id=refund.order,
        out_refund_no=refund.out_refund_no,
        amount_fen=refund.amount_fen,
        reason=service.refund_reason(refund),
        status=refund.status,
        created_at=refund.created_at,
        settled_at=refund.settled_at,
    )


class CashierGroupBuyController(Controller):
    path = "/api/v1/cashier/groupbuy/orders"
    tags = ["Cashier"]
    dependencies = {"staff": caller(provide_current_staff)}

    @post(
        "/{order_id:int}/refunds",
        operation_id="RefundGroupBuyOrder",
        responses=openapi.replayed(SeatRefundOut) | openapi.errors(502, 503),
    )
    async def refund(
        self,
        services: NamedDependency[Services],
        staff: NamedDependency[CurrentStaff],
        order_id: PathId,
        data: JSONBody[SeatRefundCreate],
    ) -> Response[SeatRefundOut]:
        """Refund a group-buy order.

        Refund a whole order of a group that succeeded, picked up or not: 201, or 200 with the same refund
        when asked again. Staff of its pickup store or HQ; the group stays succeeded."""
        refund, is_new = await service.refund_after_success(
            order_id,
            acts_for=staff.acts_for,
            staff_id=staff.id,
            note=data.reason,
            provider=services.payment_provider,
            policy=services.payment_policy,
        )
        answer = seat_refund_out(refund)
        return (
            created(answer, f"{self.path}/{order_id}/refunds/{refund.id}")
            if is_new
            else Response(answer, status_code=200)
        )

    @get("/{order_id:int}/refunds/{refund_id:int}", operation_id="GetGroupBuyRefund")
    async def get_refund(
        self, staff: NamedDependency[CurrentStaff], order_id: PathId, refund_id: PathId
    ) -> SeatRefundOut:
        """A refund of a group-buy order.

        Where the refund stands at WeChat Pay (its `Location` when it was asked for): for staff of the order's
        pickup store or HQ; any other order, or a refund of another order, does not exist."""
        return seat_refund_out(await service.seat_refund(order_id, refund_id, acts_for=staff.acts_for))
