"""A member's standing: their tier by growth, their paid period, and what the two give on an order.

Growth is the fen a member has paid on orders of every kind, less what was refunded; it is kept on the member's
row with the tier it reaches, by one statement in the transaction of each payment and refund, so that concurrent
payments crossing a threshold leave the tier that their summed growth reaches (they take the row in turn).
Changing the ladder re-tiers every member with one set-based statement.

What the standing gives, read where an order needs it:
- points are earned at the higher of the tier's and the active paid plan's multiplier, the tier being the one
  the order's own payment leaves (growth is counted by an early handler, before anything earns);
- the tier's discount comes off a till or store-code payment of a member known when it is placed;
- an active paid plan with member prices gives the member the mall's member prices.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

import msgspec
from piccolo.querystring import QueryString

from backend.audit import service as audit
from backend.core.db import Prepared, get_engine, write_transaction
from backend.core.recent import Recent
from backend.members import merges
from backend.members.tables import Member
from backend.membership.errors import LadderInvalid
from backend.membership.schemas import TierIn
from backend.membership.tables import MembershipPlan, PaidMembership, Tier
from backend.orders.outcomes import NO_MULTIPLIER, PaidOrder, RefundedOrder, on_paid, on_refunded

logger = logging.getLogger(__name__)

RECENT_SECONDS = 1.0  # a ladder or plan changed on another worker is seen by this one within it


@dataclass(frozen=True, slots=True)
class TierRecord:
    code: str
    name: str
    min_growth: int
    points_multiplier_percent: int
    discount_percent: int


@dataclass(frozen=True, slots=True)
class PlanRecord:
    id: int
    code: str
    title: str
    price_fen: int
    days: int
    points_multiplier_percent: int
    member_price: bool
    coupon_template_ids: tuple[int, ...]
    on_sale: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PaidPeriod:
    plan_id: int
    started_at: datetime
    active_until: datetime


@dataclass(frozen=True, slots=True)
class Standing:
    growth_fen: int
    tier: TierRecord | None
    next_tier: TierRecord | None
    paid: PaidPeriod | None  # while it is active


# The ladder and the plans: a few rows each, read by every order ------------------------------------------

_ladder: Recent[str, tuple[TierRecord, ...]] = Recent(RECENT_SECONDS)
_plans: Recent[str, dict[int, PlanRecord]] = Recent(RECENT_SECONDS)
_TIER_COLUMNS = tuple(getattr(Tier, name) for name in TierRecord.__slots__)
PLAN_COLUMNS = tuple(getattr(MembershipPlan, name) for name in PlanRecord.__slots__)


async def ladder() -> tuple[TierRecord, ...]:
    """The tiers, lowest first."""

    async def load() -> tuple[TierRecord, ...]:
        return tuple(TierRecord(**row) for row in await Tier.select(*_TIER_COLUMNS).order_by(Tier.min_growth))

    return await _ladder.read("ladder", load)


def plan_of(row: dict) -> PlanRecord:
    ids = tuple(int(part) for part in row["coupon_template_ids"].split(",") if part)
    return PlanRecord(**{**row, "coupon_template_ids": ids})


async def plans() -> dict[int, PlanRecord]:
    """Every plan, on sale or not (a member's period may be of one taken off sale), by id."""

    async def load() -> dict[int, PlanRecord]:
        return {row["id"]: plan_of(row) for row in await MembershipPlan.select(*PLAN_COLUMNS)}

    return await _plans.read("plans", load)


def forget_plans() -> None:
    _plans.forget_everything()


def tier_reached(tiers: tuple[TierRecord, ...], growth_fen: int) -> tuple[TierRecord | None, TierRecord | None]:
    """The tier that growth reaches, and the one above it."""
    held = None
    for tier in tiers:
        if tier.min_growth > growth_fen:
            return held, tier
        held = tier
    return held, None


def _held(tiers: tuple[TierRecord, ...], row: dict | None) -> TierRecord | None:
    """The tier a member's row says they hold (None without a row, or while there is no ladder)."""
    code = row["tier_code"] if row is not None else ""
    return next((tier for tier in tiers if tier.code == code), None)


def _tier_of(growth: str) -> str:
    """SQL: the code of the highest tier at or under `growth` ("" without a ladder)."""
    return (
        f'COALESCE((SELECT t."code" FROM "tier" t WHERE t."min_growth" <= {growth} '
        "ORDER BY t.\"min_growth\" DESC LIMIT 1), '')"
    )


_MEMBER_GROWTH = '"member"."growth_fen"'
_MISTIERED = f'"tier_code" <> {_tier_of(_MEMBER_GROWTH)}'


async def set_ladder(tiers: list[TierIn], *, staff_id: int) -> tuple[tuple[TierRecord, ...], int]:
    """HQ's whole ladder, in place of the one before; every member is re-tiered by one statement. Answers the
    ladder and how many members changed tier."""
    problems: dict[str, str] = {}
    if len({tier.code for tier in tiers}) != len(tiers):
        problems["tiers.code"] = "each tier has its own code"
    if len({tier.min_growth for tier in tiers}) != len(tiers):
        problems["tiers.minGrowth"] = "each tier starts at its own growth"
    elif tiers and min(tier.min_growth for tier in tiers) != 0:
        problems["tiers.minGrowth"] = "the lowest tier starts at 0, so that every member holds one"
    if problems:
        raise LadderInvalid(details=problems)
    async with write_transaction():
        before = await Tier.select(*_TIER_COLUMNS).order_by(Tier.min_growth)
        await Tier.delete(force=True)
        if tiers:
            await Tier.insert(
                *(
                    Tier(
                        code=tier.code,
                        name=tier.name,
                        min_growth=tier.min_growth,
                        points_multiplier_percent=tier.points_multiplier_percent,
                        discount_percent=tier.discount_percent,
                    )
                    for tier in tiers
                )
            )
        engine = get_engine()
        counted = await engine.run_querystring(QueryString(f'SELECT COUNT(*) AS "n" FROM "member" WHERE {_MISTIERED}'))
        await engine.run_querystring(
            QueryString(f'UPDATE "member" SET "tier_code" = {_tier_of(_MEMBER_GROWTH)} WHERE {_MISTIERED}')
        )
        after = sorted((msgspec.structs.asdict(tier) for tier in tiers), key=lambda tier: tier["min_growth"])
        shown = [{name: row[name] for name in TierRecord.__slots__} for row in before]
        await audit.record(
            "tiers.set",
            "tier_ladder",
            "",
            before={"tiers": shown, "members_retiered": None},
            after={"tiers": after, "members_retiered": counted[0]["n"]},
        )
    _ladder.forget_everything()
    changed = counted[0]["n"]
    logger.info("tier ladder set", extra={"tiers": len(tiers), "members_retiered": changed, "staff_id": staff_id})
    return await ladder(), changed


# Growth, in the transaction of every payment and refund --------------------------------------------------

_GROW = Prepared(
    lambda fen, member_id: (
        Member.update(
            {
                Member.growth_fen: Member.growth_fen + fen,
                Member.tier_code: QueryString(_tier_of('"member"."growth_fen" + {}'), fen),
            }
        )
        .where(Member.id == member_id)
        .returning(Member.tier_code)
    )
)


@on_paid(early=True)
async def grow_on_payment(order: PaidOrder) -> None:
    """What an order paid counts towards its member's tier before anything earns on it."""
    if order.member_id is not None and order.paid_fen:
        await _GROW.run(order.paid_fen, order.member_id)


@on_refunded()
async def shrink_on_refund(order: RefundedOrder) -> None:
    """A refund takes its amount off the member's growth, and may lower their tier (money that came after the
    order had closed unpaid was never counted)."""
    if order.member_id is not None and not order.late:
        await _GROW.run(-order.amount_fen, order.member_id)


# Reading a member's standing -------------------------------------------------------------------------

_STANDING = Prepared(
    lambda member_id: Member.select(Member.growth_fen, Member.tier_code).where(Member.id == member_id).first()
)
_PERIOD = Prepared(
    lambda member_id: (
        PaidMembership.select(PaidMembership.plan, PaidMembership.started_at, PaidMembership.active_until)
        .where(PaidMembership.member == member_id)
        .first()
    )
)


async def paid_period(member_id: int, now: datetime) -> PaidPeriod | None:
    """The member's paid period while it is active."""
    row = await _PERIOD.run(member_id)
    if row is None or row["active_until"] <= now:
        return None
    return PaidPeriod(plan_id=row["plan"], started_at=row["started_at"], active_until=row["active_until"])


async def standing(member_id: int, now: datetime) -> Standing:
    row = await _STANDING.run(member_id)
    growth = row["growth_fen"] if row is not None else 0
    tiers = await ladder()
    held = _held(tiers, row)
    _, next_tier = tier_reached(tiers, held.min_growth if held is not None else -1)
    return Standing(growth_fen=growth, tier=held, next_tier=next_tier, paid=await paid_period(member_id, now))


async def earn_multiplier(member_id: int, now: datetime) -> int:
    """The percent a paid order's points are earned at: the higher of the member's tier's and their active paid
    plan's (100 when neither gives more). Nothing is read while no tier and no plan gives more."""
    tiers, by_id = await ladder(), await plans()
    if not any(tier.points_multiplier_percent > NO_MULTIPLIER for tier in tiers) and not any(
        plan.points_multiplier_percent > NO_MULTIPLIER for plan in by_id.values()
    ):
        return NO_MULTIPLIER
    multiplier = NO_MULTIPLIER
    row = await _STANDING.run(member_id)
    tier = _held(tiers, row)
    if tier is not None:
        multiplier = tier.points_multiplier_percent
    period = await paid_period(member_id, now)
    if period is not None and (plan := by_id.get(period.plan_id)) is not None:
        multiplier = max(multiplier, plan.points_multiplier_percent)
    return multiplier


async def tier_discount_percent(member_id: int) -> int:
    """The percent the member's tier takes off a till or store-code payment (0: none; nothing read while no tier
    gives a discount)."""
    tiers = await ladder()
    if not any(tier.discount_percent for tier in tiers):
        return 0
    row = await _STANDING.run(member_id)
    tier = _held(tiers, row)
    return tier.discount_percent if tier is not None else 0


async def member_prices(member_id: int, now: datetime) -> bool:
    """Whether the mall's member prices are the member's: an active paid plan that gives them."""
    by_id = await plans()
    if not any(plan.member_price for plan in by_id.values()):
        return False
    period = await paid_period(member_id, now)
    plan = by_id.get(period.plan_id) if period is not None else None
    return plan is not None and plan.member_price


# Merges: growth adds up; the later-ending paid period is the survivor's ------------------------------------


@merges.on_merge(merges.STANDING)
async def move_standing(survivor_id: int, merged_id: int, now: datetime) -> None:
    merged = await Member.select(Member.growth_fen).where(Member.id == merged_id).first()
    if merged is not None and merged["growth_fen"]:
        await Member.update({Member.growth_fen: 0, Member.tier_code: ""}).where(Member.id == merged_id)
        await _GROW.run(merged["growth_fen"], survivor_id)
    theirs = await PaidMembership.select().where(PaidMembership.member == merged_id).first()
    if theirs is None:
        return
    ours = await PaidMembership.select().where(PaidMembership.member == survivor_id).first()
    if ours is None:
        await PaidMembership.update({PaidMembership.member: survivor_id}).where(PaidMembership.id == theirs["id"])
        return
    await PaidMembership.delete().where(PaidMembership.id == theirs["id"])
    if theirs["active_until"] > ours["active_until"]:
        await PaidMembership.update(
            {
                PaidMembership.plan: theirs["plan"],
                PaidMembership.active_until: theirs["active_until"],
                PaidMembership.coupons_due_at: theirs["coupons_due_at"] or ours["coupons_due_at"],
            }
        ).where(PaidMembership.id == ours["id"])
