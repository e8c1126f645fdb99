from datetime import datetime
from typing import Annotated

import msgspec

from backend.core.paging import Id
from backend.core.schema import Struct

Scene = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")]
Points = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


class ReferralCampaignCreate(Struct):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    starts_at: datetime
    ends_at: datetime
    referrer_points: Points
    referee_points: Points
    holding_period_days: Annotated[int, msgspec.Meta(ge=0, le=90)]
    daily_cap_per_referrer: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    poster_template: Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9_-]+$")] = "referral"


class ReferralCampaignPatch(Struct):
    """What HQ changes on a running campaign; `closed: true` ends it now."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | msgspec.UnsetType = msgspec.UNSET
    ends_at: datetime | msgspec.UnsetType = msgspec.UNSET
    referrer_points: Points | msgspec.UnsetType = msgspec.UNSET
    referee_points: Points | msgspec.UnsetType = msgspec.UNSET
    daily_cap_per_referrer: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | msgspec.UnsetType = msgspec.UNSET
    closed: bool | msgspec.UnsetType = msgspec.UNSET


class ReferralCampaignOut(Struct):
    id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    referrer_points: int
    referee_points: int
    holding_period_days: int
    daily_cap_per_referrer: int
    poster_template: str
    created_at: datetime
    closed_at: datetime | None = None  # closed early by HQ (its end moved to then)


class ReferralCampaignCountsOut(Struct):
    share_links: int
    referrals: int
    qualified: int
    points_released: int


class AdminReferralCampaignOut(ReferralCampaignOut):
    counts: ReferralCampaignCountsOut | None = None


class AdminReferralCampaignsPage(Struct):
    items: list[AdminReferralCampaignOut]
    next_cursor: str | None


class ShareLinkCreate(Struct):
    campaign_id: Id | None = None
    group_id: Id | None = None


class ShareLinkOut(Struct):
    scene: str
    url: str


class ShareOut(Struct, omit_defaults=True):
    kind: str  # "referral" | "group"
    sharer_nickname: str
    campaign_id: int | None = None
    group_id: int | None = None


class LeaderboardRow(Struct):
    rank: int
    nickname: str  # masked
    referrals: int


class LeaderboardOut(Struct):
    campaign_id: int
    items: list[LeaderboardRow]


class MyReferral(Struct):
    referral_id: int
    campaign_id: int | None
    nickname: str  # masked
    joined_at: datetime
    qualified_at: datetime | None
    # awaiting_first_order | held | released | cancelled | clawed_back | capped
    reward_status: str
    reward_points: int
    release_at: datetime | None


class MyReferralsOut(Struct):
    items: list[MyReferral]
