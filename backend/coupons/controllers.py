from datetime import datetime
from typing import Annotated

from litestar import Controller, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from backend.core import openapi
from backend.core.auth import caller
from backend.core.clock import utcnow
from backend.core.errors import NotFound
from backend.core.paging import Cursor, Limit, PathId, TimeCursor, after_time, before, time_cursor
from backend.core.responses import created
from backend.coupons import service
from backend.coupons.schemas import (
    ClaimableCouponOut,
    ClaimableCoupons,
    CouponCampaignCreate,
    CouponCampaignOut,
    CouponCampaignPatch,
    CouponCampaignsPage,
    CouponIssueCreate,
    CouponIssueOut,
    CouponOut,
    CouponsPage,
    CouponTemplateCreate,
    CouponTemplateOut,
    CouponTemplatesPage,
)
from backend.coupons.service import CampaignRecord, CouponRecord, IssueRecord, TemplateRecord, ids_of
from backend.coupons.tables import CouponChannel
from backend.members.auth import CurrentMember, ensure_active, provide_current_member
from backend.stores.auth import CurrentStaff, provide_hq_admin


def _channels(text: str) -> list[CouponChannel]:
    return [CouponChannel(value) for value in text.split(",")]


def template_out(template: TemplateRecord) -> CouponTemplateOut:
    return CouponTemplateOut(
        id=template.id,
        title=template.title,
        kind=template.kind,
        value_fen=template.value_fen,
        percent_off=template.percent_off,
        max_discount_fen=template.max_discount_fen,
        min_spend_fen=template.min_spend_fen,
        channels=_channels(template.channels),
        store_ids=ids_of(template.store_ids),
        product_ids=ids_of(template.product_ids),
        valid_days=template.valid_days,
        valid_from=template.valid_from,
        valid_until=template.valid_until,
        per_member_limit=template.per_member_limit,
        total_limit=template.total_limit,
        issued_count=template.issued_count,
        created_at=template.created_at,
    )


def campaign_out(campaign: CampaignRecord) -> CouponCampaignOut:
    return CouponCampaignOut(
        id=campaign.id,
        template_id=campaign.template.id,
        trigger=campaign.trigger,
        segment_id=campaign.segment_id,
        value_rule=campaign.value_rule,
        reward_to=campaign.reward_to,
        budget_fen=campaign.budget_fen,
        budget_used_fen=campaign.budget_used_fen,
        budget_left_fen=campaign.budget_left_fen,
        issued_count=campaign.issued_count,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        created_at=campaign.created_at,
        closed_at=campaign.closed_at,
    )


def issue_out(issue: IssueRecord) -> CouponIssueOut:
    return CouponIssueOut(
        id=issue.id,
        campaign_id=issue.campaign,
        status=issue.status,
        issued=issue.issued,
        skipped=issue.skipped,
        issued_fen=issue.issued_fen,
        budget_left_fen=issue.budget_left_fen,
    )


def coupon_out(coupon: CouponRecord, now: datetime) -> CouponOut:
    return CouponOut(
        id=coupon.id,
        title=coupon.title,
        kind=coupon.kind,
        value_fen=coupon.value_fen,
        percent_off=coupon.percent_off,
        max_discount_fen=coupon.max_discount_fen,
        min_spend_fen=coupon.min_spend_fen,
        channels=_channels(coupon.channels),
        store_ids=ids_of(coupon.store_ids),
        product_ids=ids_of(coupon.product_ids),
        valid_from=coupon.valid_from,
        valid_until=coupon.valid_until,
        status=coupon.shown_status(now),
        campaign_id=coupon.campaign,
        order_id=coupon.order,
        used_at=coupon.used_at,
    )


class AdminCouponController(Controller):
    path = "/api/v1/admin"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @post("/coupon-templates", operation_id="CreateCouponTemplate")
    async def create_template(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[CouponTemplateCreate]
    ) -> Response[CouponTemplateOut]:
        """Create a coupon template.

        Fixed (`valueFen`) or percent off (`percentOff`, capped by `maxDiscountFen`), a minimum spend on the amount
        before points, the channels it works in, optional stores and products, validity as `validDays` from issue
        or a `validFrom`..`validUntil` window, and per-member and total limits. Each coupon keeps the terms it was
        issued on."""
        template = await service.create_template(data, staff_id=staff.id)
        return created(template_out(template), f"{self.path}/coupon-templates/{template.id}")

    @get("/coupon-templates", operation_id="ListCouponTemplates")
    async def templates(
        self, staff: NamedDependency[CurrentStaff], limit: Limit = 50, cursor: Cursor = None
    ) -> CouponTemplatesPage:
        """List coupon templates.

        Newest first, paged by `cursor` (the last id of the page before)."""
        items = await service.list_templates(limit=limit, before_id=before(cursor))
        return CouponTemplatesPage(
            items=[template_out(t) for t in items], next_cursor=str(items[-1].id) if len(items) == limit else None
        )

    @get("/coupon-templates/{template_id:int}", operation_id="GetCouponTemplate")
    async def template(self, staff: NamedDependency[CurrentStaff], template_id: PathId) -> CouponTemplateOut:
        """A coupon template, with how many of its coupons are issued."""
        return template_out(await service.get_template(template_id))

    @post("/coupon-campaigns", operation_id="CreateCouponCampaign")
    async def create_campaign(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[CouponCampaignCreate]
    ) -> Response[CouponCampaignOut]:
        """Create a coupon campaign.

        A template, a trigger (`enrolment`: each member enrolled while it runs; `referral_reward`: the referrer
        and/or referee, `rewardTo`, when a referral qualifies; `claim`: members claim it; `manual`: HQ issues it to
        its segment), an optional `segmentId` audience, a `valueRule` that sets each member's face value (千人千券)
        and a `budgetFen` that the face values issued never pass."""
        campaign = await service.create_campaign(data, staff_id=staff.id)
        return created(campaign_out(campaign), f"{self.path}/coupon-campaigns/{campaign.id}")

    @get("/coupon-campaigns", operation_id="ListCouponCampaigns")
    async def campaigns(
        self, staff: NamedDependency[CurrentStaff], limit: Limit = 50, cursor: Cursor = None
    ) -> CouponCampaignsPage:
        """List coupon campaigns.

        Newest first, with what each has issued and what is left of its budget."""
        items = await service.list_campaigns(limit=limit, before_id=before(cursor))
        return CouponCampaignsPage(
            items=[campaign_out(c) for c in items], next_cursor=str(items[-1].id) if len(items) == limit else None
        )

    @get("/coupon-campaigns/{campaign_id:int}", operation_id="GetCouponCampaign")
    async def campaign(self, staff: NamedDependency[CurrentStaff], campaign_id: PathId) -> CouponCampaignOut:
        """A coupon campaign, with its counts and budget."""
        return campaign_out(await service.get_campaign(campaign_id))

    @patch("/coupon-campaigns/{campaign_id:int}", operation_id="UpdateCouponCampaign", responses=openapi.errors(404))
    async def update_campaign(
        self, staff: NamedDependency[CurrentStaff], campaign_id: PathId, data: JSONBody[CouponCampaignPatch]
    ) -> CouponCampaignOut:
        """Edit or close a coupon campaign.

        Moves a running campaign's end, changes its budget (never below what it has used), or ends it now with
        `closed: true`: no coupons are issued or claimed from it from then, and those issued stay usable until
        their own validity ends. An ended campaign is 422."""
        return campaign_out(await service.update_campaign(campaign_id, data))

    @post(
        "/coupon-campaigns/{campaign_id:int}/issues",
        operation_id="IssueCouponCampaign",
        responses=openapi.replayed(CouponIssueOut) | openapi.errors(409),
    )
    async def issue(
        self, staff: NamedDependency[CurrentStaff], campaign_id: PathId, data: JSONBody[CouponIssueCreate]
    ) -> Response[CouponIssueOut]:
        """Issue a manual campaign to its segment now.

        Batch by batch, each a short transaction, until every member of the segment is reached, the budget would
        be passed by the next coupon, or the template's total limit is issued; answers `{issued, skipped,
        budgetLeftFen}`. The same `idempotencyKey` again issues nothing more and answers the same issue (200),
        carrying on one that stopped half way."""
        issue, new = await service.issue(campaign_id, idempotency_key=data.idempotency_key, staff_id=staff.id)
        answer = issue_out(issue)
        location = f"{self.path}/coupon-campaigns/{campaign_id}/issues/{issue.id}"
        return created(answer, location) if new else Response(answer, status_code=200)

    @get("/coupon-campaigns/{campaign_id:int}/issues/{issue_id:int}", operation_id="GetCouponIssue")
    async def issue_progress(
        self, staff: NamedDependency[CurrentStaff], campaign_id: PathId, issue_id: PathId
    ) -> CouponIssueOut:
        """An issue's progress: issued, skipped and the budget left."""
        issue = await service.get_issue(issue_id)
        if issue is None or issue.campaign != campaign_id:
            raise NotFound("No such issue of this campaign.")
        return issue_out(issue)


class CouponCampaignController(Controller):
    path = "/api/v1/coupon-campaigns"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @get(operation_id="ListClaimableCoupons")
    async def claimable(self, member: NamedDependency[CurrentMember]) -> ClaimableCoupons:
        """Coupons I may claim.

        `claim` campaigns running now whose audience includes me, ending soonest first."""
        campaigns = sorted(await service.claimable(member.id), key=lambda c: (c.ends_at, c.id))
        return ClaimableCoupons(
            items=[
                ClaimableCouponOut(
                    id=c.id,
                    title=c.template.title,
                    kind=c.template.kind,
                    value_fen=c.template.value_fen,
                    percent_off=c.template.percent_off,
                    max_discount_fen=c.template.max_discount_fen,
                    min_spend_fen=c.template.min_spend_fen,
                    channels=_channels(c.template.channels),
                    ends_at=c.ends_at,
                )
                for c in campaigns
            ]
        )

    @post("/{campaign_id:int}/claims", operation_id="ClaimCoupon", responses=openapi.errors(409))
    async def claim(self, member: NamedDependency[CurrentMember], campaign_id: PathId) -> Response[CouponOut]:
        """Claim a coupon.

        Within the template's per-member limit (409 `coupons.limit_reached`) and never past its total limit or the
        campaign's budget (409 `coupons.sold_out`), whatever the number of members claiming at once."""
        await ensure_active(member.id)
        coupon = await service.claim(campaign_id, member.id)
        return created(coupon_out(coupon, utcnow()), "/api/v1/me/coupons")


_SHOWN = "^(usable|used|expired)$"


class MyCouponsController(Controller):
    path = "/api/v1/me/coupons"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @get(operation_id="ListMyCoupons")
    async def mine(
        self,
        member: NamedDependency[CurrentMember],
        status: Annotated[str, QueryParameter(pattern=_SHOWN)] = "usable",
        limit: Limit = 50,
        cursor: TimeCursor = None,
    ) -> CouponsPage:
        """My coupons.

        By `status`: `usable` ones expiring soonest first (the default), `expired` and `used` ones latest validity
        first; paged by `cursor`."""
        now = utcnow()
        items = await service.member_coupons(member.id, shown=status, limit=limit, after=after_time(cursor))
        return CouponsPage(
            items=[coupon_out(c, now) for c in items],
            next_cursor=time_cursor(items[-1].valid_until, items[-1].id) if len(items) == limit else None,
        )
