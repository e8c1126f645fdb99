"""Referrals: share links, who brought whom in, and the rewards a real referral earns (拉新有礼).

A referral is bound when a new member arrives through a share link (a login or a till enrolment carrying
its scene): first touch wins, never oneself, never a cycle, and only for a member without a paid order.
Its rewards are made with the referee's first paid order, held for the campaign's holding period, then
posted to the points ledger once; a refund of that order cancels them, or claws them back once posted.
"""

import logging
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.query.functions.aggregate import Count, Sum

from backend.audit import service as audit
from backend.core.clock import business_day, utcnow
from backend.core.db import Prepared, heavy_reads, insert_row, is_unique_violation, write_transaction
from backend.core.errors import KVUnavailable
from backend.core.kv import KV
from backend.core.schema import given
from backend.coupons import service as coupons
from backend.groupbuy.tables import Group
from backend.members.tables import Member
from backend.orders import service as orders
from backend.points import service as points
from backend.referrals.errors import (
    CampaignInvalid,
    CampaignNotFound,
    ShareTargetClosed,
    ShareTargetNotFound,
    UnknownScene,
)
from backend.referrals.tables import (
    SCENE_LENGTH,
    Referral,
    ReferralCampaign,
    ReferralReward,
    ReferralStatus,
    ReferrerDay,
    RewardRole,
    RewardStatus,
    ShareLink,
)

logger = logging.getLogger(__name__)

SCENE_ALPHABET = string.digits + string.ascii_letters
MAX_CHAIN = 64  # referrers looked through for a cycle
REWARD_SOURCE = "referral_reward"


@dataclass(frozen=True, slots=True)
class ReferralCampaignRecord:
    id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    referrer_points: int
    referee_points: int
    holding_period_days: int
    daily_cap_per_referrer: int
    poster_template: str
    closed_at: datetime | None
    created_by: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ShareLinkRecord:
    id: int
    scene: str
    sharer: int
    target: str
    campaign: int | None
    group: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Shared:
    """What a scanned scene opens, for anyone: no ids of people."""

    kind: str  # referral | group
    campaign_id: int | None
    group_id: int | None
    sharer_nickname: str


@dataclass(frozen=True, slots=True)
class LeaderboardEntry:
    rank: int
    nickname: str  # masked
    referrals: int


@dataclass(frozen=True, slots=True)
class BroughtIn:
    """A member this member brought in, and where the referrer's reward for them stands."""

    referral_id: int
    campaign_id: int | None
    nickname: str  # masked
    joined_at: datetime
    qualified_at: datetime | None
    reward_status: str  # awaiting_first_order | held | released | cancelled | clawed_back | capped
    reward_points: int
    release_at: datetime | None


def new_scene() -> str:
    return "".join(secrets.choice(SCENE_ALPHABET) for _ in range(SCENE_LENGTH))


def mask_nickname(nickname: str) -> str:
    """张三丰 → 张*丰, 李四 → 李*, Alice → A***e: enough for a friend to recognise, not to identify."""
    name = nickname.strip()
    if len(name) <= 1:
        return "*" if name else "会员"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * min(len(name) - 2, 4) + name[-1]


# Campaigns (HQ) ------------------------------------------------------------------------------------------


async def create_campaign(data: Any, *, staff_id: int, templates: set[str]) -> ReferralCampaignRecord:
    problems = {}
    for name, value in (("startsAt", data.starts_at), ("endsAt", data.ends_at)):
        if value.tzinfo is None:
            problems[name] = "give the time zone, for example 2026-12-01T10:00:00+08:00"
    if not problems:
        if data.ends_at <= data.starts_at:
            problems["endsAt"] = "must be after startsAt"
        elif data.ends_at <= utcnow():
            problems["endsAt"] = "must be in the future"
    if data.poster_template not in templates:
        problems["posterTemplate"] = f"no such template; one of {sorted(templates)}"
    if data.referrer_points == 0 and data.referee_points == 0:
        problems["referrerPoints"] = "a campaign rewards someone"
    if problems:
        raise CampaignInvalid(details=problems)
    async with write_transaction():
        campaign_id = await _insert_campaign(data, staff_id)
        await audit.record("referral_campaign.create", "referral_campaign", campaign_id, after=given(data))
    logger.info("referral campaign created", extra={"campaign_id": campaign_id, "staff_id": staff_id})
    return await get_campaign(campaign_id)


async def _insert_campaign(data: Any, staff_id: int) -> int:
    return await insert_row(
        ReferralCampaign,
        title=data.title,
        starts_at=data.starts_at.astimezone(UTC),
        ends_at=data.ends_at.astimezone(UTC),
        referrer_points=data.referrer_points,
        referee_points=data.referee_points,
        holding_period_days=data.holding_period_days,
        daily_cap_per_referrer=data.daily_cap_per_referrer,
        poster_template=data.poster_template,
        created_by=staff_id,
        created_at=utcnow(),
    )


_CAMPAIGN = Prepared(lambda campaign_id: ReferralCampaign.select().where(ReferralCampaign.id == campaign_id).first())
_LINK = Prepared(
    lambda sharer, target: ShareLink.select().where((ShareLink.sharer == sharer) & (ShareLink.target == target)).first()
)
_GROUP_OPEN = Prepared(
    lambda group_id: Group.select(Group.status, Group.expires_at).where(Group.id == group_id).first()
)


async def get_campaign(campaign_id: int) -> ReferralCampaignRecord:
    campaign = await _CAMPAIGN.run(campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id=campaign_id)
    return ReferralCampaignRecord(**campaign)


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    share_links: int = 0
    referrals: int = 0  # members brought in
    qualified: int = 0  # of them, those whose first paid order counted
    points_released: int = 0  # rewards posted to the ledger (to referrers and referees)


async def list_campaigns(*, before_id: int | None, limit: int) -> list[ReferralCampaignRecord]:
    """Every referral campaign, running, ended or closed, newest first."""
    query = ReferralCampaign.select().order_by(ReferralCampaign.id, ascending=False).limit(limit)
    if before_id is not None:
        query = query.where(ReferralCampaign.id < before_id)
    return [ReferralCampaignRecord(**row) for row in await query]


async def campaign_counts(campaign_ids: list[int]) -> dict[int, CampaignCounts]:
    if not campaign_ids:
        return {}
    with heavy_reads():
        links = (
            await ShareLink.select(ShareLink.campaign, Count().as_alias("n"))
            .where(ShareLink.campaign.is_in(campaign_ids))
            .group_by(ShareLink.campaign)
        )
        edges = (
            await Referral.select(Referral.campaign, Referral.status, Count().as_alias("n"))
            .where(Referral.campaign.is_in(campaign_ids) & (Referral.status != ReferralStatus.void))
            .group_by(Referral.campaign, Referral.status)
        )
        released = (
            await ReferralReward.select(
                ReferralReward.referral.campaign.as_alias("campaign"), Sum(ReferralReward.points).as_alias("points")
            )
            .where(ReferralReward.referral.campaign.is_in(campaign_ids))
            .where(ReferralReward.status == RewardStatus.released)
            .group_by(ReferralReward.referral.campaign)
        )
    counts = {
        campaign_id: {"share_links": 0, "referrals": 0, "qualified": 0, "points_released": 0}
        for campaign_id in campaign_ids
    }
    for row in links:
        counts[row["campaign"]]["share_links"] = int(row["n"])
    for row in edges:
        counts[row["campaign"]]["referrals"] += int(row["n"])
        if row["status"] == ReferralStatus.qualified.value:
            counts[row["campaign"]]["qualified"] += int(row["n"])
    for row in released:
        counts[row["campaign"]]["points_released"] = int(row["points"] or 0)
    return {campaign_id: CampaignCounts(**values) for campaign_id, values in counts.items()}


async def update_campaign(campaign_id: int, data: Any, *, now: datetime | None = None) -> ReferralCampaignRecord:
    """HQ edits a campaign's title, rewards, cap or end, or closes it early (`closed`: its end moves to now; the
    rewards already earned under it are released as ever)."""
    now = now or utcnow()
    values = given(data)
    closed = values.pop("closed", None)
    async with write_transaction():
        campaign = await _CAMPAIGN.run(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id=campaign_id)
        if campaign["ends_at"] <= now and (values or closed):
            raise CampaignInvalid(
                "This campaign has ended: it can no longer be changed.",
                details={"endsAt": campaign["ends_at"].isoformat()},
            )
        if "ends_at" in values:
            if values["ends_at"].tzinfo is None:
                raise CampaignInvalid(details={"endsAt": "give the time zone, for example 2026-12-01T10:00:00+08:00"})
            values["ends_at"] = values["ends_at"].astimezone(UTC)
            if values["ends_at"] <= max(now, campaign["starts_at"]):
                raise CampaignInvalid(
                    details={"endsAt": "must be after startsAt and in the future (close it to stop it now)"}
                )
        if closed:
            values["ends_at"], values["closed_at"] = now, now
            values["starts_at"] = min(campaign["starts_at"], now)
        merged = {**campaign, **values}
        if merged["referrer_points"] == 0 and merged["referee_points"] == 0:
            raise CampaignInvalid(details={"referrerPoints": "a campaign rewards someone"})
        action = "referral_campaign.close" if closed else "referral_campaign.update"
        await audit.update_row(ReferralCampaign, campaign_id, values, action=action, entity="referral_campaign")
    logger.info("referral campaign updated", extra={"campaign_id": campaign_id, "fields": sorted(values)})
    return await get_campaign(campaign_id)


# Share links -------------------------------------------------------------------------------------------


async def share_link(member_id: int, *, campaign_id: int | None = None, group_id: int | None = None) -> ShareLinkRecord:
    """The member's link to a running campaign or a group still forming; the same one every time."""
    now = utcnow()
    if campaign_id is not None:
        campaign = await _CAMPAIGN.run(campaign_id)
        if campaign is None:
            raise ShareTargetNotFound(campaign_id=campaign_id)
        if campaign["ends_at"] <= now:
            raise ShareTargetClosed("This campaign has ended.", campaign_id=campaign_id)
        target = f"campaign:{campaign_id}"
    else:
        group = await _GROUP_OPEN.run(group_id)
        if group is None:
            raise ShareTargetNotFound(group_id=group_id)
        if group["status"] != "forming" or group["expires_at"] <= now:
            raise ShareTargetClosed("This group is no longer forming.", group_id=group_id)
        target = f"group:{group_id}"
    existing = await _LINK.run(member_id, target)
    if existing is not None:
        return ShareLinkRecord(**existing)
    try:
        await insert_row(
            ShareLink,
            scene=new_scene(),
            sharer=member_id,
            target=target,
            campaign=campaign_id,
            group=group_id,
            created_at=now,
        )
    except Exception as error:
        if not is_unique_violation(error):
            raise  # else: the same link, made by a concurrent request
    return ShareLinkRecord(**await _LINK.run(member_id, target))


async def scene_exists(scene: str) -> bool:
    return await ShareLink.exists().where(ShareLink.scene == scene)


async def resolve(scene: str) -> Shared:
    """What a scanned scene opens, for anyone: the target and the sharer's nickname, no ids of people."""
    link = (
        await ShareLink.select(ShareLink.campaign, ShareLink.group, ShareLink.sharer.nickname)
        .where(ShareLink.scene == scene)
        .first()
    )
    if link is None:
        raise UnknownScene()
    return Shared(
        kind="referral" if link["campaign"] is not None else "group",
        campaign_id=link["campaign"],
        group_id=link["group"],
        sharer_nickname=link["sharer.nickname"],
    )


# Attribution -------------------------------------------------------------------------------------------


async def _referrers_of(member_id: int) -> list[int]:
    chain, current = [], member_id
    for _ in range(MAX_CHAIN):
        row = (
            await Referral.select(Referral.referrer)
            .where((Referral.referee == current) & (Referral.status != ReferralStatus.void))
            .first()
        )
        if row is None:
            break
        chain.append(current := row["referrer"])
    return chain


async def attribute(referee_id: int, scene: str, *, is_new: bool, now: datetime | None = None) -> bool:
    """Bind the member to the scene's sharer when every rule allows it; answers whether a referral was made.
    Inside the caller's transaction when there is one (a till payment enrolling its payer)."""
    now = now or utcnow()
    link = (
        await ShareLink.select(ShareLink.id, ShareLink.sharer, ShareLink.campaign, ShareLink.sharer.status)
        .where(ShareLink.scene == scene)
        .first()
    )
    reason = ""
    if link is None:
        reason = "unknown scene"
    elif link["sharer"] == referee_id or link["sharer.status"] != "active":
        reason = "self-referral" if link["sharer"] == referee_id else "sharer no longer a member"
    elif await Referral.exists().where(Referral.referee == referee_id):
        reason = "referred already: first touch wins"
    elif not is_new and await orders.has_paid_order(referee_id):
        reason = "not a new member: a paid order exists"
    elif referee_id in await _referrers_of(link["sharer"]):
        reason = "a cycle"
    if not reason and link["campaign"] is not None:
        campaign = await _CAMPAIGN.run(link["campaign"])
        if not (campaign["starts_at"] <= now < campaign["ends_at"]):
            reason = "campaign not running"
    if reason:
        logger.info("referral not bound", extra={"member_id": referee_id, "reason": reason})
        return False
    # ON CONFLICT rather than a caught unique violation: inside a till payment's transaction, a failed
    # statement would void the whole transaction on PostgreSQL.
    bound = (
        await Referral.insert(
            Referral(
                referee=referee_id,
                referrer=link["sharer"],
                share_link=link["id"],
                campaign=link["campaign"],
                status=ReferralStatus.bound,
                created_at=now,
            )
        )
        .on_conflict(target=Referral.referee, action="DO NOTHING")
        .returning(Referral.id)
    )
    if not bound:
        return False  # another link bound this member a moment ago: first touch wins
    logger.info("referral bound", extra={"member_id": referee_id, "referrer_id": link["sharer"]})
    return True


# Rewards -----------------------------------------------------------------------------------------------


# Run by every paid order: prepared once.
_QUALIFY = Prepared(
    lambda member_id, order_id, now: (
        Referral.update(
            {Referral.status: ReferralStatus.qualified, Referral.first_order: order_id, Referral.qualified_at: now}
        )
        .where((Referral.referee == member_id) & (Referral.status == ReferralStatus.bound))
        .returning(Referral.id, Referral.referrer, Referral.campaign)
    )
)


async def on_paid_order(member_id: int, order_id: int, *, now: datetime) -> None:
    """Inside the transaction that records a paid order of any kind: a bound referral's first paid order
    makes its rewards, held until the holding period is over (or posted now when it is 0), and the coupons of
    the referral reward campaigns running now."""
    qualified = await _QUALIFY.run(member_id, order_id, now)
    if not qualified:
        return
    referral = qualified[0]
    await coupons.reward_referral(referral["id"], referrer_id=referral["referrer"], referee_id=member_id, now=now)
    if referral["campaign"] is None:
        return
    campaign = await _CAMPAIGN.run(referral["campaign"])
    release_at = now + timedelta(days=campaign["holding_period_days"])
    if campaign["referrer_points"]:
        status = RewardStatus.held if await _within_cap(referral["referrer"], campaign, now) else RewardStatus.capped
        await insert_row(
            ReferralReward,
            referral=referral["id"],
            member=referral["referrer"],
            role=RewardRole.referrer,
            campaign=campaign["id"],
            points=campaign["referrer_points"],
            status=status,
            release_at=release_at,
            created_at=now,
        )
        if status is RewardStatus.capped:
            logger.info("referral reward over the daily cap", extra={"referral_id": referral["id"]})
    if campaign["referee_points"]:
        await insert_row(
            ReferralReward,
            referral=referral["id"],
            member=member_id,
            role=RewardRole.referee,
            campaign=campaign["id"],
            points=campaign["referee_points"],
            status=RewardStatus.held,
            release_at=release_at,
            created_at=now,
        )
    if campaign["holding_period_days"] == 0:
        for reward in await ReferralReward.select(ReferralReward.id).where(
            (ReferralReward.referral == referral["id"]) & (ReferralReward.status == RewardStatus.held)
        ):
            await _release(reward["id"], now=now)


async def _within_cap(referrer_id: int, campaign: dict[str, Any], now: datetime) -> bool:
    day = business_day(now)
    await ReferrerDay.insert(
        ReferrerDay(referrer=referrer_id, campaign=campaign["id"], day=day, rewards=0)
    ).on_conflict(target=(ReferrerDay.referrer, ReferrerDay.campaign, ReferrerDay.day), action="DO NOTHING")
    counted = (
        await ReferrerDay.update({ReferrerDay.rewards: ReferrerDay.rewards + 1})
        .where(
            (ReferrerDay.referrer == referrer_id)
            & (ReferrerDay.campaign == campaign["id"])
            & (ReferrerDay.day == day)
            & (ReferrerDay.rewards < campaign["daily_cap_per_referrer"])
        )
        .returning(ReferrerDay.id)
    )
    return bool(counted)


async def _release(reward_id: int, *, now: datetime) -> bool:
    """Post one held reward, once: the status and the ledger entry in one transaction."""
    async with write_transaction():
        released = (
            await ReferralReward.update({ReferralReward.status: RewardStatus.released, ReferralReward.settled_at: now})
            .where((ReferralReward.id == reward_id) & (ReferralReward.status == RewardStatus.held))
            .returning(ReferralReward.member, ReferralReward.points, ReferralReward.referral)
        )
        if not released:
            return False
        reward = released[0]
        await points.reward(
            reward["member"],
            reward["points"],
            store_id=None,
            source_type=REWARD_SOURCE,
            source_id=str(reward_id),
            idempotency_key=f"{REWARD_SOURCE}:{reward_id}",
            now=now,
        )
    logger.info("referral reward released", extra={"reward_id": reward_id, "member_id": reward["member"]})
    return True


async def release_due(*, now: datetime | None = None) -> int:
    """The sweeper's part: held rewards whose holding period is over are posted; answers how many."""
    now = now or utcnow()
    due = (
        await ReferralReward.select(ReferralReward.id)
        .where((ReferralReward.status == RewardStatus.held) & (ReferralReward.release_at <= now))
        .limit(500)
    )
    for reward in due:
        await _release(reward["id"], now=now)
    return len(due)


async def on_order_refunded(order_id: int, *, now: datetime) -> None:
    """A refund of a referral's first paid order: rewards not posted yet are cancelled, posted ones are
    reversed through the ledger (debt where the points are spent). Inside the refund's transaction."""
    referral = await Referral.select(Referral.id).where(Referral.first_order == order_id).first()
    if referral is None:
        return
    await _undo_rewards(referral["id"], now=now, why="first order refunded")


async def _undo_rewards(referral_id: int, *, now: datetime, why: str) -> None:
    await ReferralReward.update({ReferralReward.status: RewardStatus.cancelled, ReferralReward.settled_at: now}).where(
        (ReferralReward.referral == referral_id) & ReferralReward.status.is_in([RewardStatus.held, RewardStatus.capped])
    )
    clawed = (
        await ReferralReward.update({ReferralReward.status: RewardStatus.clawed_back, ReferralReward.settled_at: now})
        .where((ReferralReward.referral == referral_id) & (ReferralReward.status == RewardStatus.released))
        .returning(ReferralReward.id)
    )
    for reward in clawed:
        await points.reverse(
            REWARD_SOURCE,
            str(reward["id"]),
            refunded=1,
            of=1,
            idempotency_key=f"{REWARD_SOURCE}:{reward['id']}:clawback",
            now=now,
        )
    logger.info("referral rewards undone", extra={"referral_id": referral_id, "reason": why})


# Merges ------------------------------------------------------------------------------------------------


async def move_edges(survivor_id: int, merged_id: int, *, now: datetime) -> int:
    """A member merge, inside its transaction: links, referrals and rewards follow the survivor. A referral
    between the two becomes void (one person cannot refer themself) and its rewards are undone."""
    for link in await ShareLink.select(ShareLink.id, ShareLink.target).where(ShareLink.sharer == merged_id):
        clash = await ShareLink.exists().where((ShareLink.sharer == survivor_id) & (ShareLink.target == link["target"]))
        # The merged member's printed posters keep working: the link stays, under the survivor.
        target = f"{link['target']}#{link['id']}" if clash else link["target"]
        await ShareLink.update({ShareLink.sharer: survivor_id, ShareLink.target: target}).where(
            ShareLink.id == link["id"]
        )
    between = await Referral.select(Referral.id).where(
        ((Referral.referrer == merged_id) & (Referral.referee == survivor_id))
        | ((Referral.referrer == survivor_id) & (Referral.referee == merged_id))
    )
    for referral in between:
        await Referral.update({Referral.status: ReferralStatus.void}).where(Referral.id == referral["id"])
        await _undo_rewards(referral["id"], now=now, why="referrer and referee merged into one member")
    # Referred both ways: the survivor's own referral stands (the first touch of the person who stays); the
    # merged one's is void if it never qualified, and kept as history, under the merged id, if it did.
    if await Referral.exists().where(Referral.referee == survivor_id):
        await Referral.update({Referral.status: ReferralStatus.void}).where(
            (Referral.referee == merged_id) & (Referral.status == ReferralStatus.bound)
        )
    moved = (
        await Referral.update({Referral.referrer: survivor_id})
        .where((Referral.referrer == merged_id) & (Referral.referee != survivor_id))
        .returning(Referral.id)
    )
    if not await Referral.exists().where(Referral.referee == survivor_id):
        await Referral.update({Referral.referee: survivor_id}).where(
            (Referral.referee == merged_id) & (Referral.referrer != survivor_id)
        )
    await ReferralReward.update({ReferralReward.member: survivor_id}).where(ReferralReward.member == merged_id)
    return len(moved)


# What members and HQ see -------------------------------------------------------------------------------

# A board is built from the database when missing and lives this long, so a new referral shows within
# that time. A reward undone (a refund's clawback, a merge) changes the count of undone rewards the board's
# key carries: the next read builds a new board at once, without the referral.
LEADERBOARD_TTL_SECONDS = 60.0
COUNTED = [RewardStatus.held, RewardStatus.released, RewardStatus.capped]
UNDONE = [RewardStatus.cancelled, RewardStatus.clawed_back]


async def _board_key(campaign_id: int) -> str:
    undone = await ReferralReward.count().where(
        (ReferralReward.campaign == campaign_id)
        & (ReferralReward.role == RewardRole.referrer)
        & ReferralReward.status.is_in(UNDONE)
    )
    return f"mall:referrals:board:{campaign_id}:{undone}"


async def _board_from_database(campaign_id: int) -> dict[str, int]:
    rows = await ReferralReward.select(ReferralReward.member).where(
        (ReferralReward.campaign == campaign_id)
        & (ReferralReward.role == RewardRole.referrer)
        & ReferralReward.status.is_in(COUNTED)
    )
    scores: dict[str, int] = {}
    for row in rows:
        scores[str(row["member"])] = scores.get(str(row["member"]), 0) + 1
    return scores


async def leaderboard(kv: KV, campaign_id: int, *, top: int = 50) -> list[LeaderboardEntry]:
    """Referrers by qualified referrals (held, released or over the cap; never undone ones)."""
    await get_campaign(campaign_id)
    key = await _board_key(campaign_id)
    try:
        board = await kv.board_top(key, top)
        if board is None:
            await kv.board_put(key, await _board_from_database(campaign_id), expires_in=LEADERBOARD_TTL_SECONDS)
            board = await kv.board_top(key, top) or []
    except KVUnavailable:  # fails open: counted from the database, as a missing board is
        scores = await _board_from_database(campaign_id)
        board = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:top]
    names = {
        row["id"]: row["nickname"]
        for row in await Member.select(Member.id, Member.nickname).where(
            Member.id.is_in([int(member) for member, _ in board] or [0])
        )
    }
    return [
        LeaderboardEntry(rank=rank, nickname=mask_nickname(names.get(int(member), "")), referrals=score)
        for rank, (member, score) in enumerate(board, start=1)
    ]


async def referrer_of(member_id: int) -> int | None:
    """The member who brought this member in, if anyone did."""
    row = (
        await Referral.select(Referral.referrer)
        .where((Referral.referee == member_id) & (Referral.status != ReferralStatus.void))
        .first()
    )
    return row["referrer"] if row else None


async def member_referrals(member_id: int) -> list[BroughtIn]:
    """The members this member brought in, newest first, with where the referrer's reward stands."""
    referrals = (
        await Referral.select(
            Referral.id,
            Referral.campaign,
            Referral.status,
            Referral.created_at,
            Referral.qualified_at,
            Referral.referee.nickname,
        )
        .where((Referral.referrer == member_id) & (Referral.status != ReferralStatus.void))
        .order_by(Referral.id, ascending=False)
        .limit(200)
    )
    rewards = {
        row["referral"]: row
        for row in await ReferralReward.select(
            ReferralReward.referral, ReferralReward.points, ReferralReward.status, ReferralReward.release_at
        ).where(
            (ReferralReward.member == member_id)
            & (ReferralReward.role == RewardRole.referrer)
            & ReferralReward.referral.is_in([r["id"] for r in referrals] or [0])
        )
    }
    out = []
    for referral in referrals:
        reward = rewards.get(referral["id"])
        out.append(
            BroughtIn(
                referral_id=referral["id"],
                campaign_id=referral["campaign"],
                nickname=mask_nickname(referral["referee.nickname"] or ""),
                joined_at=referral["created_at"],
                qualified_at=referral["qualified_at"],
                reward_status=reward["status"] if reward else "awaiting_first_order",
                reward_points=reward["points"] if reward else 0,
                release_at=reward["release_at"] if reward else None,
            )
        )
    return out
