from typing import Annotated, Literal

from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream

from backend.core import openapi, spreadsheet
from backend.core.auth import caller
from backend.core.clock import utcnow
from backend.core.paging import Cursor, Limit, PathId, before
from backend.core.responses import created
from backend.members.auth import CurrentMember, provide_current_member
from backend.membership import service, standing
from backend.membership.errors import SegmentNotFound
from backend.membership.schemas import (
    LadderIn,
    LadderOut,
    MembershipOut,
    MemberTagsAdd,
    MemberTagsOut,
    MemberTierOut,
    PaidOut,
    SegmentCreate,
    SegmentMemberOut,
    SegmentMembersPage,
    SegmentOut,
    SegmentsPage,
    TagCreate,
    TagOut,
    TagsOut,
    TierOut,
)
from backend.membership.service import SegmentRecord, TagRecord
from backend.membership.standing import Standing, TierRecord
from backend.stores.auth import CurrentStaff, provide_current_staff, provide_hq_admin
from backend.stores.tables import StaffRole


def tag_out(tag: TagRecord) -> TagOut:
    return TagOut(id=tag.id, name=tag.name, group=tag.group, created_at=tag.created_at)


def segment_out(segment: SegmentRecord) -> SegmentOut:
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        rules=segment.rules,
        created_at=segment.created_at,
        created_by_id=segment.created_by,
    )


class AdminTagController(Controller):
    path = "/api/v1/admin/tags"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_current_staff)}

    @post(operation_id="CreateTag", responses=openapi.errors(409))
    async def create_tag(self, staff: NamedDependency[CurrentStaff], data: JSONBody[TagCreate]) -> Response[TagOut]:
        """Create a tag.

        HQ names a tag, in a group or none (`口味偏好`: `榴莲控`); a name is once in its group (409 otherwise)."""
        staff.require_role(StaffRole.hq_admin)
        tag = await service.create_tag(data, staff_id=staff.id)
        return created(tag_out(tag), f"/api/v1/admin/tags/{tag.id}")

    @get(operation_id="ListTags")
    async def list_tags(self, staff: NamedDependency[CurrentStaff]) -> TagsOut:
        """Every tag.

        The tags there are, by group and name: HQ's and store managers' to put on members."""
        staff.require_role(StaffRole.hq_admin, StaffRole.store_manager)
        return TagsOut(items=[tag_out(tag) for tag in await service.list_tags()])


class AdminMemberTagController(Controller):
    path = "/api/v1/admin/members/{member_id:int}/tags"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_current_staff)}

    async def _visible(self, staff: CurrentStaff, member_id: int) -> None:
        staff.require_role(StaffRole.hq_admin, StaffRole.store_manager)
        await service.ensure_member_visible(member_id, None if staff.is_hq else staff.store_ids)

    @get(operation_id="ListMemberTags", responses=openapi.errors(404))
    async def list_member_tags(self, staff: NamedDependency[CurrentStaff], member_id: PathId) -> MemberTagsOut:
        """A member's tags.

        HQ reads any member's; a store manager those of their stores' members (enrolled at one of their stores,
        or with an order at one)."""
        await self._visible(staff, member_id)
        return MemberTagsOut(member_id=member_id, items=[tag_out(t) for t in await service.member_tags(member_id)])

    @post(operation_id="AddMemberTags", status_code=200, responses=openapi.errors(404))
    async def add_member_tags(
        self, staff: NamedDependency[CurrentStaff], member_id: PathId, data: JSONBody[MemberTagsAdd]
    ) -> MemberTagsOut:
        """Tag a member.

        Puts the tags on the member (those already on stay); answers every tag the member has. HQ tags any member,
        a store manager their stores' members (enrolled at one of their stores, or with an order at one); another
        member does not exist for them. An unknown tag is 422 `tags.unknown` with its id, and nothing is put on."""
        await self._visible(staff, member_id)
        tags = await service.add_member_tags(member_id, data.tag_ids, staff_id=staff.id)
        return MemberTagsOut(member_id=member_id, items=[tag_out(tag) for tag in tags])

    @delete("/{tag_id:int}", operation_id="RemoveMemberTag", responses=openapi.errors(404))
    async def remove_member_tag(self, staff: NamedDependency[CurrentStaff], member_id: PathId, tag_id: PathId) -> None:
        """Untag a member.

        Takes the tag off the member (204, also when it was not on); who may is as for tagging."""
        await self._visible(staff, member_id)
        await service.remove_member_tag(member_id, tag_id)


class AdminSegmentController(Controller):
    path = "/api/v1/admin/segments"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @post(operation_id="CreateSegment")
    async def create_segment(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[SegmentCreate]
    ) -> Response[SegmentOut]:
        """Create a segment.

        HQ describes members by rules, all of which must hold: `tagIds` (holds any of them), `tierCodes` (holds one
        of those tiers now; a code not on the ladder is `segments.unknown_tier`), `storeIds`
        (enrolled at one of them), `enrolledVia` (one channel or several), spend in a window (`minSpendFen`,
        `maxSpendFen`, `spendWindowDays`, 90 days when not given), `lastPaidWithinDays`, `lastPaidBeforeDays`
        (paid before, nothing since), `minOrders`. Who matches is worked out whenever the segment is read."""
        segment = await service.create_segment(data, staff_id=staff.id)
        return created(segment_out(segment), f"/api/v1/admin/segments/{segment.id}")

    @get(operation_id="ListSegments")
    async def list_segments(
        self, staff: NamedDependency[CurrentStaff], limit: Limit = 20, cursor: Cursor = None
    ) -> SegmentsPage:
        """List segments.

        HQ's segments, newest first."""
        items = await service.list_segments(limit=limit, before_id=before(cursor))
        next_cursor = str(items[-1].id) if len(items) == limit else None
        return SegmentsPage(items=[segment_out(s) for s in items], next_cursor=next_cursor)

    @get("/{segment_id:int}", operation_id="GetSegment", responses=openapi.errors(404))
    async def get_segment(self, staff: NamedDependency[CurrentStaff], segment_id: PathId) -> SegmentOut:
        """A segment.

        One segment with its rules."""
        return segment_out(await _segment(segment_id))

    @get(
        "/{segment_id:int}/members",
        operation_id="ListSegmentMembers",
        responses=openapi.errors(404),
        operation_class=openapi.operation_with(answers=("text/csv",), answers_schema=Schema(type=OpenAPIType.STRING)),
    )
    async def segment_members(
        self,
        staff: NamedDependency[CurrentStaff],
        segment_id: PathId,
        limit: Limit = 20,
        cursor: Cursor = None,
        format_: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
    ) -> Response[SegmentMembersPage]:  # or the CSV, documented beside it
        """A segment's members.

        The members matching the segment now: `count` of them all and a page, newest member first. With
        `?format=csv`, every one of them as a spreadsheet (UTF-8 with BOM), streamed as it is read."""
        segment = await _segment(segment_id)
        now = utcnow()
        if format_ == "csv":
            return Stream(
                service.members_csv(segment.rules, now=now),
                media_type="text/csv",  # a stream of text is answered with its charset, utf-8
                headers=spreadsheet.attachment(f"segment-{segment_id}-members.csv"),
            )
        count = await service.count_members(segment.rules, now=now)
        page = await service.members_page(segment.rules, now=now, limit=limit, before_id=before(cursor))
        return Response(
            SegmentMembersPage(
                count=count,
                items=[
                    SegmentMemberOut(
                        member_id=m.id,
                        nickname=m.nickname,
                        phone_masked=m.phone_masked,
                        enrolled_store_id=m.enrolled_store_id,
                        enrolled_via=m.enrolled_via,
                        created_at=m.created_at,
                    )
                    for m in page
                ],
                next_cursor=str(page[-1].id) if len(page) == limit else None,
            )
        )


async def _segment(segment_id: int) -> SegmentRecord:
    segment = await service.find_segment(segment_id)
    if segment is None:
        raise SegmentNotFound(segment_id=segment_id)
    return segment


def tier_out(tier: TierRecord) -> TierOut:
    return TierOut(
        code=tier.code,
        name=tier.name,
        min_growth=tier.min_growth,
        points_multiplier_percent=tier.points_multiplier_percent,
        discount_percent=tier.discount_percent,
    )


def membership_out(held: Standing) -> MembershipOut:
    tier = None
    if held.tier is not None:
        tier = MemberTierOut(
            code=held.tier.code,
            name=held.tier.name,
            growth=held.growth_fen,
            next_tier_growth=held.next_tier.min_growth if held.next_tier is not None else None,
            points_multiplier_percent=held.tier.points_multiplier_percent,
            discount_percent=held.tier.discount_percent,
        )
    paid = None
    if held.paid is not None:
        paid = PaidOut(plan_id=held.paid.plan_id, active_until=held.paid.active_until, started_at=held.paid.started_at)
    return MembershipOut(tier=tier, growth=held.growth_fen, paid=paid)


class AdminTierController(Controller):
    path = "/api/v1/admin/tiers"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @put(operation_id="SetTiers", responses=openapi.errors(422))
    async def set_tiers(self, staff: NamedDependency[CurrentStaff], data: JSONBody[LadderIn]) -> LadderOut:
        """Set the tier ladder.

        The whole ladder, in place of the one before: each tier's `code`, `name`, the growth it starts at
        (`minGrowth`, fen paid less refunds; the lowest starts at 0), its points multiplier in percent and its
        discount off till and store-code payments. Every member is re-tiered at once (`membersRetiered`); an empty
        list sets tiers off."""
        tiers, changed = await standing.set_ladder(data.tiers, staff_id=staff.id)
        return LadderOut(tiers=[tier_out(tier) for tier in tiers], members_retiered=changed)

    @get(operation_id="GetTiers")
    async def get_tiers(self, staff: NamedDependency[CurrentStaff]) -> LadderOut:
        """Get the tier ladder.

        The tiers HQ has set, lowest first (none: tiers are off)."""
        return LadderOut(tiers=[tier_out(tier) for tier in await standing.ladder()], members_retiered=0)


class MyMembershipController(Controller):
    path = "/api/v1/me/membership"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @get(operation_id="GetMyMembership")
    async def mine(self, member: NamedDependency[CurrentMember]) -> MembershipOut:
        """My tier and paid membership.

        The tier my growth reaches (fen paid less refunds), with the growth the next tier starts at, and my paid
        membership while it is active (`paid`: its plan and `activeUntil`; null otherwise)."""
        return membership_out(await standing.standing(member.id, utcnow()))
