from enum import Enum

from piccolo.columns import Date, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.groupbuy.tables import Group
from backend.members.tables import Member
from backend.stores.tables import Staff

SCENE_LENGTH = 24  # of [0-9A-Za-z]: about 143 bits, within WeChat's 32-character scene


class ReferralCampaign(Table, tablename="referral_campaign"):
    """拉新有礼: points for the member who brought a new member in, and for the new member, once the new
    member's first paid order has stood for the holding period."""

    title = Varchar(length=100)
    starts_at = Timestamptz()
    ends_at = Timestamptz(index=True)
    referrer_points = Integer()
    referee_points = Integer()
    holding_period_days = Integer()
    daily_cap_per_referrer = Integer()
    poster_template = Varchar(length=40, default="referral")
    closed_at = Timestamptz(null=True, default=None)  # closed early by HQ (its end moved to then)
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    referral_campaign_points_sane = Check(
        (referrer_points >= 0) & (referee_points >= 0) & (holding_period_days >= 0) & (daily_cap_per_referrer >= 1)
    )


class ShareLink(Table, tablename="referral_share_link"):
    """A member's link to a referral campaign or a group-buy group: the scene a mini-program code carries.

    `target` names what it points at ("campaign:7", "group:9"): one link per member and target.
    """

    scene = Varchar(length=32, unique=True)
    sharer = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    target = Varchar(length=64)
    campaign = ForeignKey(ReferralCampaign, null=True, on_delete=OnDelete.restrict)
    group = ForeignKey(Group, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    one_link_per_sharer_and_target = Unique([sharer, target])
    share_link_has_one_target = Check('(("campaign" IS NULL) <> ("group" IS NULL))')


class ReferralStatus(str, Enum):
    bound = "bound"  # brought in; no paid order yet
    qualified = "qualified"  # the first paid order arrived: rewards were made for it
    void = "void"  # referrer and referee turned out to be one person (a merge)


class Referral(Table, tablename="referral_edge"):
    """Who brought a member in: first touch wins (one row per referee), never oneself, never a cycle."""

    referee = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, unique=True)
    referrer = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    share_link = ForeignKey(ShareLink, null=False, on_delete=OnDelete.restrict)
    campaign = ForeignKey(ReferralCampaign, null=True, on_delete=OnDelete.restrict, index=True)
    status = Varchar(length=16, choices=ReferralStatus, default=ReferralStatus.bound)
    first_order = Integer(null=True, default=None, index=True)  # the first paid order, of any kind, that qualified it
    qualified_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()

    referral_never_self = Check('"referee" <> "referrer"')
    referral_qualified_by_an_order = Check(
        '("status" <> \'qualified\' OR ("first_order" IS NOT NULL AND "qualified_at" IS NOT NULL))'
    )


class RewardRole(str, Enum):
    referrer = "referrer"
    referee = "referee"


class RewardStatus(str, Enum):
    held = "held"  # waiting out the holding period
    released = "released"  # posted to the ledger
    cancelled = "cancelled"  # the order was refunded before release: never posted
    clawed_back = "clawed_back"  # the order was refunded after release: reversed through the ledger
    capped = "capped"  # over the referrer's daily cap: no points


class ReferralReward(Table, tablename="referral_reward"):
    """Points one referral earns one of its two members; posted once, at `release_at`, by the sweeper."""

    referral = ForeignKey(Referral, null=False, on_delete=OnDelete.restrict, index=True)
    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    role = Varchar(length=8, choices=RewardRole)
    campaign = ForeignKey(ReferralCampaign, null=False, on_delete=OnDelete.restrict, index=True)
    points = Integer()
    status = Varchar(length=16, choices=RewardStatus, default=RewardStatus.held)
    release_at = Timestamptz(index=True)
    settled_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()

    one_reward_per_referral_and_role = Unique([referral, role])
    referral_reward_points_not_negative = Check(points >= 0)


class ReferrerDay(Table, tablename="referral_referrer_day"):
    """Rewards a referrer earned in a campaign on one business day, raised by a guarded update against the
    campaign's daily cap."""

    referrer = ForeignKey(Member, null=False, on_delete=OnDelete.restrict)
    campaign = ForeignKey(ReferralCampaign, null=False, on_delete=OnDelete.cascade)
    day = Date()
    rewards = Integer(default=0)

    one_row_per_referrer_campaign_day = Unique([referrer, campaign, day])
    referrer_day_rewards_not_negative = Check(rewards >= 0)
