from datetime import timedelta

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from backend.core import openapi
from backend.core.auth import caller
from backend.core.clock import utcnow
from backend.core.errors import NotFound
from backend.core.idempotency import idempotency_key
from backend.core.paging import Cursor, Limit, PathId, before
from backend.core.responses import created
from backend.members import service as members
from backend.members.auth import CurrentMember, provide_current_member
from backend.points import service
from backend.points.errors import ZeroAdjustment
from backend.points.schemas import (
    EntriesPage,
    EntryOut,
    ExpiringOut,
    PointsAdjustmentCreate,
    PointsLiabilityOut,
    PointsOut,
    PostedOut,
    StoreLiabilityOut,
)
from backend.points.service import EntryRecord, Posted
from backend.services import Services
from backend.stores import service as stores
from backend.stores.auth import CurrentStaff, provide_hq_admin

EXPIRING_WITHIN = timedelta(days=90)


def entry_out(entry: EntryRecord) -> EntryOut:
    return EntryOut(
        id=entry.id,
        delta=entry.delta,
        kind=entry.kind,
        store_id=entry.store,
        created_at=entry.created_at,
        balance_after=entry.balance_after,
        debt_delta=entry.debt_delta,
        source_type=entry.source_type,
        source_id=entry.source_id,
        reason=entry.reason,
    )


def posted_out(posted: Posted) -> PostedOut:
    return PostedOut(
        entry_id=posted.entry_id,
        kind=posted.kind,
        delta=posted.delta,
        debt_delta=posted.debt_delta,
        balance=posted.balance,
        debt=posted.debt,
    )


class MyPointsController(Controller):
    path = "/api/v1/me/points"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @get(operation_id="GetMyPoints")
    async def get_points(self, member: NamedDependency[CurrentMember]) -> PointsOut:
        """My points balance.

        The member's balance and the points that expire soonest, by date."""
        balance, debt = await service.balance_of(member.id)
        expiring = await service.upcoming_expiries(member.id, now=utcnow(), within=EXPIRING_WITHIN)
        return PointsOut(
            balance=balance,
            debt=debt,
            expiring=[ExpiringOut(points=e.points, expires_at=e.expires_at) for e in expiring],
        )

    @get("/entries", operation_id="ListMyPointsEntries")
    async def list_entries(
        self, member: NamedDependency[CurrentMember], limit: Limit = 20, cursor: Cursor = None
    ) -> EntriesPage:
        """My points ledger.

        The member's ledger entries, newest first, paged by `cursor` (source, store and balance after)."""
        rows = await service.entries_page(member.id, limit=limit + 1, before_id=before(cursor))
        items = [entry_out(r) for r in rows[:limit]]
        return EntriesPage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


class AdminPointsController(Controller):
    path = "/api/v1/admin"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @post(
        "/members/{member_id:int}/points-adjustments",
        operation_id="AdjustMemberPoints",
        responses=openapi.replayed(PostedOut) | openapi.errors(404),
    )
    async def adjust(
        self,
        services: NamedDependency[Services],
        request: Request,
        staff: NamedDependency[CurrentStaff],
        member_id: PathId,
        data: JSONBody[PointsAdjustmentCreate],
    ) -> Response[PostedOut]:
        """Adjust a member's points.

        HQ corrects a member's points: a credit is a new lot, a debit may not take the balance below zero.
        Once per idempotency key (body `idempotencyKey` or an `Idempotency-Key` header).
        """
        key = idempotency_key(request.headers, data.idempotency_key)
        if data.delta == 0:
            raise ZeroAdjustment()
        if not await members.is_active_member(member_id):
            raise NotFound("No such member.", member_id=member_id)
        posted = await service.adjust(
            member_id,
            data.delta,
            reason=f"{data.reason} (by {staff.username})",
            idempotency_key=key,
        )
        answer = posted_out(posted)
        if posted.replayed:
            return Response(answer, status_code=200)
        return created(answer, f"{self.path}/members/{member_id}/points-entries/{posted.entry_id}")

    @get("/members/{member_id:int}/points-entries/{entry_id:int}", operation_id="GetMemberPointsEntry")
    async def get_entry(self, staff: NamedDependency[CurrentStaff], member_id: PathId, entry_id: PathId) -> EntryOut:
        """A member's points entry.

        One entry of a member's ledger (an adjustment's `Location`): its source, store and balance after."""
        entry = await service.find_entry(member_id, entry_id)
        if entry is None:
            raise NotFound("No such points entry of that member.", member_id=member_id, entry_id=entry_id)
        return entry_out(entry)

    @get("/reports/points-liability", operation_id="GetPointsLiability")
    async def liability(self, staff: NamedDependency[CurrentStaff]) -> PointsLiabilityOut:
        """Points liability report.

        Points outstanding by store and by month of expiry: what the chain owes its members."""
        rows = await service.liability_by_store()
        codes = await stores.store_codes([r.store_id for r in rows if r.store_id is not None])
        return PointsLiabilityOut(
            stores=[
                StoreLiabilityOut(
                    store_id=r.store_id,
                    store_code=codes.get(r.store_id) if r.store_id is not None else None,
                    earned=r.earned,
                    redeemed=r.redeemed,
                    expired=r.expired,
                    reversed=r.reversed,
                    adjusted=r.adjusted,
                    outstanding=r.outstanding,
                )
                for r in rows
            ],
            total_outstanding=sum(r.outstanding for r in rows),
            total_balances=await service.total_balances(),
        )
