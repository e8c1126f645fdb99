import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from backend.core import openapi
from backend.core.auth import caller
from backend.core.paging import Cursor, Limit, PathId, before
from backend.core.responses import created
from backend.members.auth import CurrentMember, provide_current_member
from backend.posters.templates import template_names
from backend.referrals import service
from backend.referrals.errors import OneTarget, UnknownScene
from backend.referrals.schemas import (
    AdminReferralCampaignOut,
    AdminReferralCampaignsPage,
    LeaderboardOut,
    LeaderboardRow,
    MyReferral,
    MyReferralsOut,
    ReferralCampaignCountsOut,
    ReferralCampaignCreate,
    ReferralCampaignOut,
    ReferralCampaignPatch,
    ShareLinkCreate,
    ShareLinkOut,
    ShareOut,
)
from backend.referrals.service import ReferralCampaignRecord, ShareLinkRecord
from backend.services import Services
from backend.stores.auth import CurrentStaff, provide_hq_admin


def campaign_out(campaign: ReferralCampaignRecord) -> ReferralCampaignOut:
    return ReferralCampaignOut(
        id=campaign.id,
        title=campaign.title,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        referrer_points=campaign.referrer_points,
        referee_points=campaign.referee_points,
        holding_period_days=campaign.holding_period_days,
        daily_cap_per_referrer=campaign.daily_cap_per_referrer,
        poster_template=campaign.poster_template,
        created_at=campaign.created_at,
        closed_at=campaign.closed_at,
    )


def admin_campaign_out(campaign: ReferralCampaignRecord, counts: service.CampaignCounts) -> AdminReferralCampaignOut:
    shown = ReferralCampaignCountsOut(**{name: getattr(counts, name) for name in service.CampaignCounts.__slots__})
    return AdminReferralCampaignOut(**msgspec.structs.asdict(campaign_out(campaign)), counts=shown)


def share_link_out(link: ShareLinkRecord, base_url: str) -> ShareLinkOut:
    return ShareLinkOut(scene=link.scene, url=base_url + link.scene)


class ReferralCampaignController(Controller):
    path = "/api/v1/referral-campaigns"
    tags = ["Referrals"]

    @get("/{campaign_id:int}", operation_id="GetReferralCampaign")
    async def get_campaign(self, campaign_id: PathId) -> ReferralCampaignOut:
        """A referral campaign.

        The rules and dates of a referral campaign, for the page a poster opens."""
        return campaign_out(await service.get_campaign(campaign_id))

    @get("/{campaign_id:int}/leaderboard", operation_id="GetReferralLeaderboard")
    async def leaderboard(self, services: NamedDependency[Services], campaign_id: PathId) -> LeaderboardOut:
        """Referral leaderboard.

        Top referrers by qualified referrals; nicknames masked."""
        rows = await service.leaderboard(services.kv, campaign_id)
        return LeaderboardOut(
            campaign_id=campaign_id,
            items=[LeaderboardRow(rank=row.rank, nickname=row.nickname, referrals=row.referrals) for row in rows],
        )


class ShareController(Controller):
    path = "/api/v1/share"
    tags = ["Referrals"]

    @get("/{scene:str}", operation_id="ResolveShareScene")
    async def resolve(self, scene: FromPath[str]) -> ShareOut:
        """Resolve a share scene.

        What a scanned poster opens: a campaign or a group, and who shared it (no ids of people). A scene
        that is not ours, malformed or not, is simply unknown."""
        if not (0 < len(scene) <= 32 and scene.isascii() and scene.isalnum()):
            raise UnknownScene()
        shared = await service.resolve(scene)
        return ShareOut(
            kind=shared.kind,
            sharer_nickname=shared.sharer_nickname,
            campaign_id=shared.campaign_id,
            group_id=shared.group_id,
        )


class MyReferralController(Controller):
    path = "/api/v1/me"
    tags = ["Referrals"]
    dependencies = {"member": caller(provide_current_member)}

    @post("/share-links", operation_id="CreateShareLink", status_code=200, responses=openapi.errors(404))
    async def share_link(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        data: JSONBody[ShareLinkCreate],
    ) -> ShareLinkOut:
        """My share link.

        The member's link to a referral campaign or a group-buy group; the same one every time."""
        if (data.campaign_id is None) == (data.group_id is None):
            raise OneTarget(details={"campaignId": "or groupId, exactly one"})
        link = await service.share_link(member.id, campaign_id=data.campaign_id, group_id=data.group_id)
        return share_link_out(link, services.settings.share_base_url)

    @get("/referrals", operation_id="ListMyReferrals")
    async def my_referrals(self, member: NamedDependency[CurrentMember]) -> MyReferralsOut:
        """My referrals.

        The members this member brought in, with where each reward stands."""
        return MyReferralsOut(
            items=[
                MyReferral(
                    referral_id=row.referral_id,
                    campaign_id=row.campaign_id,
                    nickname=row.nickname,
                    joined_at=row.joined_at,
                    qualified_at=row.qualified_at,
                    reward_status=row.reward_status,
                    reward_points=row.reward_points,
                    release_at=row.release_at,
                )
                for row in await service.member_referrals(member.id)
            ]
        )


class AdminReferralController(Controller):
    path = "/api/v1/admin/referral-campaigns"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @post(operation_id="CreateReferralCampaign")
    async def create_campaign(
        self, staff: NamedDependency[CurrentStaff], data: JSONBody[ReferralCampaignCreate]
    ) -> Response[ReferralCampaignOut]:
        """Create a referral campaign.

        HQ creates a referral campaign (points for referrer and referee, holding period, daily cap)."""
        campaign = campaign_out(await service.create_campaign(data, staff_id=staff.id, templates=template_names()))
        return created(campaign, f"/api/v1/referral-campaigns/{campaign.id}")

    @get(operation_id="ListAllReferralCampaigns")
    async def list_campaigns(
        self, staff: NamedDependency[CurrentStaff], limit: Limit = 20, cursor: Cursor = None
    ) -> AdminReferralCampaignsPage:
        """Every referral campaign with its counts.

        Running, ended or closed, newest first, each with its share links, the members brought in, those qualified
        by a first paid order, and the reward points released."""
        rows = await service.list_campaigns(before_id=before(cursor), limit=limit)
        counts = await service.campaign_counts([row.id for row in rows])
        return AdminReferralCampaignsPage(
            items=[admin_campaign_out(row, counts[row.id]) for row in rows],
            next_cursor=str(rows[-1].id) if len(rows) == limit else None,
        )

    @patch("/{campaign_id:int}", operation_id="UpdateReferralCampaign", responses=openapi.errors(404, 422))
    async def update_campaign(
        self, staff: NamedDependency[CurrentStaff], campaign_id: PathId, data: JSONBody[ReferralCampaignPatch]
    ) -> AdminReferralCampaignOut:
        """Edit or close a referral campaign.

        Changes a running campaign's title, rewards, daily cap or end; `closed: true` ends it now (new share links
        and referrals stop; rewards already earned are released as ever). An ended campaign is 422."""
        campaign = await service.update_campaign(campaign_id, data)
        return admin_campaign_out(campaign, (await service.campaign_counts([campaign.id]))[campaign.id])
