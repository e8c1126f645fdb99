from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import QueryParameter
from litestar.response import Stream

from backend.audit import service as audit
from backend.core import openapi, spreadsheet
from backend.core.auth import caller
from backend.core.clock import BUSINESS_TIME
from backend.core.paging import (
    SEARCH_WORD,
    Cursor,
    From,
    Limit,
    Moment,
    PathId,
    before,
    business_days,
    moment,
    query_id,
)
from backend.core.spreadsheet import text_cell
from backend.hq import report, service
from backend.hq.report import FIGURES
from backend.hq.schemas import (
    AuditEntryOut,
    AuditPage,
    DayTotalOut,
    Figures,
    IdentityOut,
    LotOut,
    MemberPageOut,
    MemberPointsOut,
    MemberRowOut,
    MembersPage,
    MergeOut,
    StoreDayOut,
    StoreReportOut,
    StoreTotalOut,
)
from backend.hq.service import MemberRow
from backend.membership.controllers import membership_out, tag_out
from backend.orders import service as orders
from backend.orders.controllers import order_out
from backend.orders.schemas import OrdersPage
from backend.orders.tables import OrderKind, OrderStatus
from backend.referrals.schemas import MyReferral
from backend.services import Services
from backend.stores import service as stores
from backend.stores.auth import CurrentStaff, provide_hq_admin, provide_hq_or_manager

CSV_BATCH = 1000
Format = Annotated[Literal["json", "csv"], QueryParameter(name="format")]
CSV_ANSWER = openapi.operation_with(answers=("text/csv",), answers_schema=Schema(type=OpenAPIType.STRING))


def member_row_out(row: MemberRow) -> MemberRowOut:
    return MemberRowOut(
        id=row.id,
        nickname=row.nickname,
        status=row.status,
        phone_masked=row.phone_masked,
        enrolled_store_id=row.enrolled_store_id,
        enrolled_via=row.enrolled_via,
        tier_code=row.tier_code or None,
        growth=row.growth_fen,
        created_at=row.created_at,
    )


def _scope(staff: CurrentStaff, store_id: int | None) -> frozenset[int] | None:
    """The stores a read covers: the one asked for (which the caller must act for), else the caller's."""
    if store_id is None:
        return staff.scope
    staff.ensure_store(store_id)
    return frozenset({store_id})


class AdminMembersController(Controller):
    path = "/api/v1/admin/members"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_or_manager)}

    @get(operation_id="SearchMembers", responses=openapi.errors(404))
    async def search(
        self,
        staff: NamedDependency[CurrentStaff],
        services: NamedDependency[Services],
        q: Annotated[str | None, QueryParameter(max_length=64, pattern=SEARCH_WORD)] = None,
        store_id: Annotated[int | None, query_id("storeId")] = None,
        tag_id: Annotated[int | None, query_id("tagId")] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> MembersPage:
        """Find members.

        `q` is a phone (the full number, 13800138000 or +8613800138000: found by its index, never by reading every
        phone), a member code scanned from the shopper's screen (read, not spent), a member id, or a part of a
        nickname; `matchedBy` says which. HQ searches every member, a store manager their stores' (enrolled at one,
        or with an order at one); `storeId` narrows to one store's, `tagId` to a tag's. Newest first."""
        scope = _scope(staff, store_id)
        search, rows = await service.search_members(
            q, codes=services.member_codes, store_ids=scope, tag_id=tag_id, before_id=before(cursor), limit=limit
        )
        return MembersPage(
            items=[member_row_out(row) for row in rows],
            next_cursor=str(rows[-1].id) if len(rows) == limit else None,
            matched_by=search.by,
        )

    @get("/{member_id:int}", operation_id="GetMemberPage", responses=openapi.errors(404))
    async def member(self, staff: NamedDependency[CurrentStaff], member_id: PathId) -> MemberPageOut:
        """A member's page.

        Identities (masked), points with their lots, tier and paid membership, tags, the latest orders (a store
        manager sees those at their stores), merges and referrals. Another store's member is 404 to a manager."""
        page = await service.member_page(member_id, store_ids=staff.scope, staff_id=staff.id)
        return MemberPageOut(
            member=member_row_out(page.member),
            identities=[
                IdentityOut(kind=i.kind.value, masked=i.masked, created_at=i.created_at) for i in page.identities
            ],
            points=MemberPointsOut(
                balance=page.balance,
                debt=page.debt,
                lots=[
                    LotOut(
                        id=lot.id,
                        store_id=lot.store_id,
                        points=lot.points,
                        remaining=lot.remaining,
                        expires_at=lot.expires_at,
                    )
                    for lot in page.lots
                ],
            ),
            membership=membership_out(page.held),
            tags=[tag_out(tag) for tag in page.tags],
            recent_orders=[
                order_out(view.order, store_name=view.store_name, channel=view.channel) for view in page.recent_orders
            ],
            merges=[
                MergeOut(
                    id=row["id"],
                    survivor_id=row["survivor"],
                    merged_id=row["merged"],
                    reason=row["reason"],
                    staff_id=row["staff"],
                    points_moved=int(row["points_moved"]),
                    orders_moved=int(row["orders_moved"]),
                    created_at=row["created_at"],
                )
                for row in page.merges
            ],
            referred_by=page.referred_by,
            brought_in=[
                MyReferral(
                    referral_id=r.referral_id,
                    campaign_id=r.campaign_id,
                    nickname=r.nickname,
                    joined_at=r.joined_at,
                    qualified_at=r.qualified_at,
                    reward_status=r.reward_status,
                    reward_points=r.reward_points,
                    release_at=r.release_at,
                )
                for r in page.brought_in
            ],
        )


ORDERS_CSV_HEADER = [
    "订单号 order id",
    "下单时间 created (Beijing)",
    "支付时间 paid (Beijing)",
    "门店 store",
    "渠道 kind",
    "状态 status",
    "金额 amount fen",
    "优惠 discount fen",
    "实收 paid fen",
    "退款 refunded fen",
    "用券优惠 coupon fen",
    "积分抵扣 points redeemed",
    "积分获得 points earned",
    "会员 member id",
]


def _local(moment_: Any) -> str:
    return moment_.astimezone(BUSINESS_TIME).isoformat(timespec="seconds") if moment_ is not None else ""


def order_filter(
    staff: CurrentStaff,
    store_id: int | None,
    kind: OrderKind | None,
    status: OrderStatus | None,
    since: str | None,
    until: str | None,
    *,
    before_id: int | None = None,
) -> orders.OrderFilter:
    """The orders a listing asks for, within the caller's stores (another store is 404)."""
    if store_id is not None:
        staff.ensure_store(store_id)
    return orders.OrderFilter(
        store=store_id,
        staff_scope=None if staff.is_hq else staff.id,
        kind=kind,
        status=status,
        since=moment(since, end=False),
        until=moment(until, end=True),
        before=before_id,
    )


class AdminOrdersController(Controller):
    path = "/api/v1/admin/orders"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_or_manager)}

    @get(operation_id="ListAllOrders", operation_class=CSV_ANSWER, responses=openapi.errors(404, 422))
    async def list_orders(
        self,
        staff: NamedDependency[CurrentStaff],
        store_id: Annotated[int | None, query_id("storeId")] = None,
        kind: Annotated[OrderKind | None, QueryParameter()] = None,
        status: Annotated[OrderStatus | None, QueryParameter()] = None,
        from_: From = None,
        to: Moment = None,
        limit: Limit = 50,
        cursor: Cursor = None,
        format_: Format = "json",
    ) -> Response[OrdersPage]:  # or the CSV, documented beside it
        """Orders across stores.

        Every channel's orders, newest first, by store, kind, status and when they were placed (`from` and `to`:
        business days, both included, or moments); HQ's of every store, a store manager's of their stores (another
        store is 404). `?format=csv`: every matching order as a spreadsheet (UTF-8 with BOM), streamed."""
        which = order_filter(staff, store_id, kind, status, from_, to, before_id=before(cursor))
        if format_ == "csv":
            return Stream(
                spreadsheet.streamed(ORDERS_CSV_HEADER, order_rows(which)),
                media_type="text/csv",
                headers=spreadsheet.attachment("orders.csv"),
            )
        views = await orders.list_orders(which, limit=limit + 1)
        items = [order_out(view.order, store_name=view.store_name, channel=view.channel) for view in views[:limit]]
        return Response(OrdersPage(items=items, next_cursor=str(items[-1].id) if len(views) > limit else None))


async def order_rows(which: orders.OrderFilter) -> AsyncIterator[list[list[Any]]]:
    while views := await orders.list_orders(which, limit=CSV_BATCH):
        yield [
            [
                view.order.id,
                _local(view.order.created_at),
                _local(view.order.paid_at),
                text_cell(view.store_name),
                view.order.kind.value,
                view.order.status.value,
                view.order.amount_fen,
                view.order.discount_fen,
                view.order.paid_fen,
                view.order.refunded_fen,
                view.order.coupon_discount_fen,
                view.order.points_redeemed,
                view.order.points_earned,
                view.order.member or "",
            ]
            for view in views
        ]
        if len(views) < CSV_BATCH:
            return
        which = orders.OrderFilter(**{**which.__dict__, "before": views[-1].order.id})


class AdminAuditController(Controller):
    path = "/api/v1/admin/audit"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @get(operation_id="ListAudit")
    async def list_entries(
        self,
        staff: NamedDependency[CurrentStaff],
        actor: Annotated[int | None, query_id("actor")] = None,
        entity: Annotated[str | None, QueryParameter(pattern=r"^[a-z_]{1,32}$")] = None,
        entity_id: Annotated[str | None, QueryParameter(name="entityId", pattern=r"^[0-9A-Za-z_:-]{1,64}$")] = None,
        from_: From = None,
        to: Moment = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> AuditPage:
        """The audit trail.

        Every HQ and store-manager write, newest first: who (`actor`, a staff id), what (`action`), to which row
        (`entity`, `entityId`), when, from where (`client`, `requestId`), and the before and after of each field it
        changed. Append-only: the database refuses to change an entry."""
        rows = await audit.entries(
            actor_id=actor,
            entity=entity,
            entity_id=entity_id,
            since=moment(from_, end=False),
            until=moment(to, end=True),
            before_id=before(cursor),
            limit=limit,
        )
        return AuditPage(
            items=[AuditEntryOut(**{name: getattr(row, name) for name in row.__slots__}) for row in rows],
            next_cursor=str(rows[-1].id) if len(rows) == limit else None,
        )


REPORT_CSV_HEADER = ["日期 day", "门店编码 store code", "门店 store", *FIGURES]


class AdminReportController(Controller):
    path = "/api/v1/admin/reports"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_or_manager)}

    @get("/stores", operation_id="GetStoreReport", operation_class=CSV_ANSWER, responses=openapi.errors(404, 422))
    async def stores_report(
        self,
        staff: NamedDependency[CurrentStaff],
        from_: From = None,
        to: Moment = None,
        store_id: Annotated[int | None, query_id("storeId")] = None,
        format_: Format = "json",
    ) -> Response[StoreReportOut]:  # or the CSV, documented beside it
        """The store report.

        Per store and business day (China Standard Time; `from` and `to` both included, the last 7 days unless
        given, at most 366): orders and sales by kind, refunds, new members by channel, points earned, redeemed
        and expired, coupons used and what they took off, group-buy units sold; with each store's totals, the
        chain's per day and the whole window's. HQ's for every store, a store manager's for theirs.
        `?format=csv`: the store-days as a spreadsheet."""
        since, until = business_days(from_, to, default_days=7, longest=report.MAX_DAYS)
        found = await report.store_report(since, until, store_ids=_scope(staff, store_id))
        names = {row.id: row for row in await stores.list_stores(None)}
        if format_ == "csv":
            rows = [
                [
                    row.day.isoformat(),
                    names[row.store_id].code,
                    text_cell(names[row.store_id].name),
                    *(getattr(row.figures, name) for name in FIGURES),
                ]
                for row in found.rows
            ]

            async def one_batch() -> AsyncIterator[list[list[Any]]]:
                yield rows

            return Stream(
                spreadsheet.streamed(REPORT_CSV_HEADER, one_batch()),
                media_type="text/csv",
                headers=spreadsheet.attachment(f"stores-{since.isoformat()}-{until.isoformat()}.csv"),
            )
        totals = Figures()
        for figures in found.by_day.values():
            totals = totals.plus(figures)
        days = [since.fromordinal(ordinal) for ordinal in range(since.toordinal(), until.toordinal() + 1)]
        return Response(
            StoreReportOut(
                from_=since,
                to=until,
                written_days=found.written_days,
                rows=[
                    StoreDayOut(
                        day=row.day,
                        store_id=row.store_id,
                        store_code=names[row.store_id].code,
                        store_name=names[row.store_id].name,
                        figures=row.figures,
                    )
                    for row in found.rows
                ],
                by_store=[
                    StoreTotalOut(
                        store_id=store_id,
                        store_code=names[store_id].code,
                        store_name=names[store_id].name,
                        figures=figures,
                    )
                    for store_id, figures in sorted(found.by_store.items(), key=lambda item: -item[1].sales_fen)
                ],
                by_day=[DayTotalOut(day=day, figures=found.by_day.get(day, Figures())) for day in days],
                totals=totals,
            )
        )
