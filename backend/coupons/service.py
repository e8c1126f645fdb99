"""Coupons: templates (what a coupon gives and where), campaigns (who gets it, when, at what face value, within what
budget), and a member's coupons, each used by one order at a time.

A coupon is granted by one of three shapes, all with the same guards: the member's next `slot` of the template (never
past its per-member limit, unique), the template's `issued_count` and the campaign's budget raised by guarded updates
(never past the total limit or the budget), and one coupon per member and `grant_key` (why it was given).

    usable -> used (by an order, in the transaction that places it) -> usable (the order closed unpaid, or refunded
    in full; a partial refund keeps it used)
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from piccolo.querystring import QueryString

from backend.audit import service as audit
from backend.catalogue.tables import Product, Sku
from backend.core.clock import utcnow
from backend.core.db import Prepared, get_engine, heavy_reads, hold, insert_row, is_unique_violation, write_transaction
from backend.core.recent import Recent
from backend.core.schema import given
from backend.coupons.errors import (
    CampaignInvalid,
    CampaignNotFound,
    CampaignNotOpen,
    ClaimLimitReached,
    CouponNotUsable,
    SoldOut,
    TemplateInvalid,
    TemplateNotFound,
    WrongTrigger,
)
from backend.coupons.schemas import CouponCampaignCreate, CouponCampaignPatch, CouponTemplateCreate, ValueRule
from backend.coupons.tables import (
    Coupon,
    CouponCampaign,
    CouponIssue,
    CouponKind,
    CouponStatus,
    CouponTemplate,
    CouponTrigger,
    IssueStatus,
    RewardTo,
)
from backend.members.tables import MemberStatus
from backend.membership import segments, standing
from backend.membership import service as membership
from backend.membership.segments import marks
from backend.orders.service import LineItem
from backend.orders.tables import OrderKind
from backend.stores import service as stores

logger = logging.getLogger(__name__)

CAMPAIGNS_SECONDS = 1.0  # a campaign created or ended on another worker is seen by this one within it


def ids_text(ids: list[int] | None) -> str:
    return ",".join(str(value) for value in sorted(set(ids or ())))


def ids_of(text: str) -> list[int]:
    return [int(value) for value in text.split(",")] if text else []


# Templates ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    id: int
    title: str
    kind: CouponKind
    value_fen: int | None
    percent_off: int | None
    max_discount_fen: int | None
    min_spend_fen: int
    channels: str
    store_ids: str
    product_ids: str
    valid_days: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    per_member_limit: int
    total_limit: int | None
    issued_count: int
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> "TemplateRecord":
        row = {name: row[name] for name in cls.__slots__}
        row["kind"] = CouponKind(row["kind"])
        return cls(**row)

    @property
    def face_fen(self) -> int | None:
        """What one coupon is worth at most: its value, or a percent coupon's cap (None: no cap)."""
        return self.value_fen if self.kind is CouponKind.fixed else self.max_discount_fen

    def expired(self, now: datetime) -> bool:
        """Its fixed window is over: a coupon issued now would be expired already."""
        return self.valid_until is not None and self.valid_until <= now

    def counted_fen(self, value_fen: int | None) -> int:
        """What one coupon of it at `value_fen` counts against a campaign's budget: its face value, or a percent
        coupon's cap."""
        return (value_fen if self.kind is CouponKind.fixed else self.max_discount_fen) or 0

    def validity(self, now: datetime) -> tuple[datetime, datetime]:
        if self.valid_days is not None:
            return now, now + timedelta(days=self.valid_days)
        assert self.valid_from is not None and self.valid_until is not None
        return self.valid_from, self.valid_until


_TEMPLATE_COLUMNS = tuple(name for name in TemplateRecord.__slots__)


async def _known(table: Any, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    return {row["id"] for row in await table.select(table.id).where(table.id.is_in(ids))}


async def create_template(data: CouponTemplateCreate, *, staff_id: int) -> TemplateRecord:
    """A coupon template, once its terms hold together (each failure 422, named)."""
    problems: dict[str, str] = {}
    if data.kind is CouponKind.fixed:
        if data.value_fen is None:
            problems["valueFen"] = "a fixed coupon needs its face value"
        if data.percent_off is not None or data.max_discount_fen is not None:
            problems["percentOff"] = "a fixed coupon has no percentage or cap"
    else:
        if data.percent_off is None:
            problems["percentOff"] = "a percent coupon needs its percentage"
        if data.value_fen is not None:
            problems["valueFen"] = "a percent coupon has no face value (cap it with maxDiscountFen)"
    window = (data.valid_from, data.valid_until)
    if data.valid_days is not None and window != (None, None):
        problems["validDays"] = "give validDays or validFrom and validUntil, not both"
    elif data.valid_days is None:
        if None in window:
            problems["validUntil"] = "give validDays, or both validFrom and validUntil"
        elif any(moment.tzinfo is None for moment in window):  # type: ignore[union-attr]
            problems["validFrom"] = "give the window with its UTC offset"
        elif data.valid_from >= data.valid_until:  # type: ignore[operator]
            problems["validUntil"] = "must be after validFrom"
        elif data.valid_until <= utcnow():  # type: ignore[operator]
            problems["validUntil"] = "is past already"
    if len(set(data.channels)) != len(data.channels):
        problems["channels"] = "name each channel once"
    if data.total_limit is not None and data.total_limit < data.per_member_limit:
        problems["totalLimit"] = "is below perMemberLimit"
    store_ids, product_ids = sorted(set(data.store_ids or ())), sorted(set(data.product_ids or ()))
    stores_known = {store_id for store_id in store_ids if await stores.recent_store(store_id) is not None}
    if missing := [store_id for store_id in store_ids if store_id not in stores_known]:
        problems["storeIds"] = f"no such stores: {missing}"
    if missing := sorted(set(product_ids) - await _known(Product, product_ids)):
        problems["productIds"] = f"no such products: {missing}"
    if problems:
        raise TemplateInvalid(details=problems)
    async with write_transaction():
        template_id = await _insert_template(data, store_ids, product_ids, staff_id)
        await audit.record("coupon_template.create", "coupon_template", template_id, after=given(data))
    template = await get_template(template_id)
    logger.info("coupon template created", extra={"template_id": template_id, "staff_id": staff_id})
    return template


async def _insert_template(
    data: CouponTemplateCreate, store_ids: list[int], product_ids: list[int], staff_id: int
) -> int:
    return await insert_row(
        CouponTemplate,
        title=data.title,
        kind=data.kind,
        value_fen=data.value_fen,
        percent_off=data.percent_off,
        max_discount_fen=data.max_discount_fen,
        min_spend_fen=data.min_spend_fen,
        channels=",".join(channel.value for channel in data.channels),
        store_ids=ids_text(store_ids),
        product_ids=ids_text(product_ids),
        valid_days=data.valid_days,
        valid_from=data.valid_from,
        valid_until=data.valid_until,
        per_member_limit=data.per_member_limit,
        total_limit=data.total_limit,
        created_by=staff_id,
        created_at=utcnow(),
    )


async def get_template(template_id: int) -> TemplateRecord:
    row = await CouponTemplate.select(*CouponTemplate.all_columns()).where(CouponTemplate.id == template_id).first()
    if row is None:
        raise TemplateNotFound(template_id=template_id)
    return TemplateRecord.of(row)


async def list_templates(*, limit: int, before_id: int | None) -> list[TemplateRecord]:
    query = CouponTemplate.select(*CouponTemplate.all_columns()).order_by(CouponTemplate.id, ascending=False)
    if before_id is not None:
        query = query.where(CouponTemplate.id < before_id)
    return [TemplateRecord.of(row) for row in await query.limit(limit)]


# Campaigns ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: int
    template: TemplateRecord
    trigger: CouponTrigger
    segment_id: int | None
    value_rule: ValueRule | None
    reward_to: RewardTo | None
    budget_fen: int | None
    budget_used_fen: int
    issued_count: int
    starts_at: datetime
    ends_at: datetime
    closed_at: datetime | None
    created_at: datetime

    def runs(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    @property
    def budget_left_fen(self) -> int | None:
        return None if self.budget_fen is None else self.budget_fen - self.budget_used_fen


_CAMPAIGN_COLUMNS = (
    "id",
    "template",
    "trigger",
    "segment",
    "value_rule",
    "reward_to",
    "budget_fen",
    "budget_used_fen",
    "issued_count",
    "starts_at",
    "ends_at",
    "closed_at",
    "created_at",
)


def _campaign_select() -> Any:
    template = CouponCampaign.template
    return CouponCampaign.select(
        *(getattr(CouponCampaign, name) for name in _CAMPAIGN_COLUMNS),
        *(getattr(template, name).as_alias(f"t_{name}") for name in _TEMPLATE_COLUMNS),
    )


def _campaign_of(row: dict[str, Any]) -> CampaignRecord:
    template = TemplateRecord.of({name: row[f"t_{name}"] for name in _TEMPLATE_COLUMNS})
    rule = row["value_rule"]
    return CampaignRecord(
        id=row["id"],
        template=template,
        trigger=CouponTrigger(row["trigger"]),
        segment_id=row["segment"],
        value_rule=msgspec.json.decode(rule, type=ValueRule) if rule else None,
        reward_to=RewardTo(row["reward_to"]) if row["reward_to"] else None,
        budget_fen=row["budget_fen"],
        budget_used_fen=row["budget_used_fen"],
        issued_count=row["issued_count"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        closed_at=row["closed_at"],
        created_at=row["created_at"],
    )


async def get_campaign(campaign_id: int) -> CampaignRecord:
    row = await _campaign_select().where(CouponCampaign.id == campaign_id).first()
    if row is None:
        raise CampaignNotFound(campaign_id=campaign_id)
    return _campaign_of(row)


async def list_campaigns(*, limit: int, before_id: int | None) -> list[CampaignRecord]:
    query = _campaign_select().order_by(CouponCampaign.id, ascending=False)
    if before_id is not None:
        query = query.where(CouponCampaign.id < before_id)
    return [_campaign_of(row) for row in await query.limit(limit)]


def _check_value_rule(rule: ValueRule, template: TemplateRecord, tiers: set[str], problems: dict[str, str]) -> None:
    """A rule names its own bands only, at least one, each band's key once (and a tier on the ladder)."""
    bands = {"spend": rule.spend_bands, "segment": rule.segment_bands, "tier": rule.tier_bands}
    keys = {
        "spend": [band.min_spend_fen for band in rule.spend_bands or ()],
        "segment": [band.segment_id for band in rule.segment_bands or ()],
        "tier": [band.tier_code for band in rule.tier_bands or ()],
    }[rule.by]
    if template.kind is not CouponKind.fixed:
        problems["valueRule"] = "sets face values: only for a fixed coupon's template"
    elif not bands[rule.by]:
        problems[f"valueRule.{rule.by}Bands"] = "give at least one band"
    elif any(given for by, given in bands.items() if by != rule.by):
        problems["valueRule"] = f"by {rule.by}: give only {rule.by}Bands"
    elif len(set(keys)) != len(keys):
        problems[f"valueRule.{rule.by}Bands"] = {
            "spend": "each band starts at its own minSpendFen",
            "segment": "name each segment once",
            "tier": "name each tier once",
        }[rule.by]
    elif rule.by == "tier" and (unknown := sorted(set(keys) - tiers)):
        problems["valueRule.tierBands"] = f"not on the tier ladder: {', '.join(unknown)}"


async def create_campaign(data: CouponCampaignCreate, *, staff_id: int) -> CampaignRecord:
    try:
        template = await get_template(data.template_id)
    except TemplateNotFound:
        raise CampaignInvalid(details={"templateId": "no such template"}) from None
    problems: dict[str, str] = {}
    if data.starts_at.tzinfo is None or data.ends_at.tzinfo is None:
        problems["startsAt"] = "give the times with their UTC offset"
    elif data.starts_at >= data.ends_at:
        problems["endsAt"] = "must be after startsAt"
    elif data.ends_at <= utcnow():
        problems["endsAt"] = "is past already"
    if template.expired(utcnow()):
        problems["templateId"] = "the template's coupons are no longer valid"
    elif template.valid_until is not None and data.ends_at.tzinfo is not None and data.ends_at > template.valid_until:
        problems["endsAt"] = "must not be after the template's validUntil: its coupons would be expired already"
    if data.reward_to is not None and data.trigger is not CouponTrigger.referral_reward:
        problems["rewardTo"] = "only a referral_reward campaign rewards a referrer or referee"
    if data.value_rule is not None:
        tiers = {tier.code for tier in await standing.ladder()}
        _check_value_rule(data.value_rule, template, tiers, problems)
    if data.budget_fen is not None and template.face_fen is None:
        problems["budgetFen"] = "a percent coupon without maxDiscountFen has no face value to count"
    problems.update(await _check_segments(data))
    if problems:
        raise CampaignInvalid(details=problems)
    reward_to = data.reward_to or (RewardTo.both if data.trigger is CouponTrigger.referral_reward else None)
    async with write_transaction():
        campaign_id = await _insert_campaign(data, template, reward_to, staff_id)
        await audit.record("coupon_campaign.create", "coupon_campaign", campaign_id, after=given(data))
    _running.forget()
    logger.info("coupon campaign created", extra={"campaign_id": campaign_id, "staff_id": staff_id})
    return await get_campaign(campaign_id)


async def _insert_campaign(
    data: CouponCampaignCreate, template: TemplateRecord, reward_to: RewardTo | None, staff_id: int
) -> int:
    return await insert_row(
        CouponCampaign,
        template=template.id,
        trigger=data.trigger,
        segment=data.segment_id,
        value_rule=msgspec.json.encode(data.value_rule).decode() if data.value_rule is not None else "",
        reward_to=reward_to,
        budget_fen=data.budget_fen,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        created_by=staff_id,
        created_at=utcnow(),
    )


async def update_campaign(
    campaign_id: int, data: CouponCampaignPatch, *, now: datetime | None = None
) -> CampaignRecord:
    """HQ moves a campaign's end, changes its budget (never below what it has used), or closes it early
    (`closed`: its end moves to now; the coupons issued stay usable to their own validity)."""
    now = now or utcnow()
    values = given(data)
    closed = values.pop("closed", None)
    async with write_transaction():
        await hold(CouponCampaign, campaign_id, CouponCampaign.id)  # an issue under way waits: its budget is read
        campaign = await get_campaign(campaign_id)
        problems: dict[str, str] = {}
        if campaign.ends_at <= now and (values or closed):
            problems["endsAt"] = "the campaign has ended: it can no longer be changed"
        elif "ends_at" in values:
            ends_at = values["ends_at"]
            if ends_at.tzinfo is None:
                problems["endsAt"] = "give the time with its UTC offset"
            elif ends_at <= max(now, campaign.starts_at):
                problems["endsAt"] = "must be after startsAt and in the future (or close it)"
            elif campaign.template.valid_until is not None and ends_at > campaign.template.valid_until:
                problems["endsAt"] = "must not be after the template's validUntil"
        if "budget_fen" in values and values["budget_fen"] is not None:
            if campaign.template.face_fen is None:
                problems["budgetFen"] = "a percent coupon without maxDiscountFen has no face value to count"
            elif values["budget_fen"] < campaign.budget_used_fen:
                problems["budgetFen"] = f"must not be below what is used already ({campaign.budget_used_fen})"
        if problems:
            raise CampaignInvalid(details=problems)
        if closed:
            values["ends_at"], values["closed_at"] = now, now
            values["starts_at"] = min(campaign.starts_at, now - timedelta(microseconds=1))
        action = "coupon_campaign.close" if closed else "coupon_campaign.update"
        await audit.update_row(CouponCampaign, campaign_id, values, action=action, entity="coupon_campaign")
    _running.forget()
    logger.info("coupon campaign updated", extra={"campaign_id": campaign_id, "fields": sorted(values)})
    return await get_campaign(campaign_id)


async def _check_segments(data: CouponCampaignCreate) -> dict[str, str]:
    """The campaign's audience and its value rule's segments exist."""
    wanted = [data.segment_id] if data.segment_id is not None else []
    if data.value_rule is not None and data.value_rule.segment_bands:
        wanted += [band.segment_id for band in data.value_rule.segment_bands]
    missing = sorted({segment_id for segment_id in wanted if await membership.find_segment(segment_id) is None})
    return {"segmentId": f"no such segments: {missing}"} if missing else {}


_running: Recent[CouponTrigger, tuple[CampaignRecord, ...]] = Recent(CAMPAIGNS_SECONDS)
_RUNNING = Prepared(
    lambda trigger, now: (
        _campaign_select()
        .where((CouponCampaign.trigger == trigger) & (CouponCampaign.ends_at > now))
        .order_by(CouponCampaign.id)
    )
)


async def running_campaigns(trigger: CouponTrigger, now: datetime) -> list[CampaignRecord]:
    """The campaigns of a trigger running now, as read at most CAMPAIGNS_SECONDS ago (an enrolment asks on every
    new member)."""

    async def load() -> tuple[CampaignRecord, ...]:
        return tuple(_campaign_of(row) for row in await _RUNNING.run(trigger.value, utcnow()))

    return [campaign for campaign in await _running.read(trigger, load) if campaign.runs(now)]


# Granting ----------------------------------------------------------------------------------------------


class Refused(Exception):
    """A grant that the limits refuse: the member holds their share, or the campaign gave out all it may."""

    def __init__(self, why: str) -> None:
        self.why = why  # "limit" | "sold_out" | "budget" | "expired" | "raced" (a concurrent grant took its slot)
        super().__init__(why)


_HELD = Prepared(
    lambda member_id, template_id: Coupon.count().where((Coupon.member == member_id) & (Coupon.template == template_id))
)


async def _take_campaign(campaign: CampaignRecord, face_fen: int, count: int = 1) -> bool:
    query = CouponCampaign.update(
        {
            CouponCampaign.budget_used_fen: CouponCampaign.budget_used_fen + face_fen,
            CouponCampaign.issued_count: CouponCampaign.issued_count + count,
        }
    ).where(CouponCampaign.id == campaign.id)
    if campaign.budget_fen is not None:  # the budget never changes: a guard against a literal
        query = query.where(CouponCampaign.budget_used_fen <= campaign.budget_fen - face_fen)
    return bool(await query.returning(CouponCampaign.id))


async def _take_template(template: TemplateRecord, count: int = 1) -> bool:
    query = CouponTemplate.update({CouponTemplate.issued_count: CouponTemplate.issued_count + count}).where(
        CouponTemplate.id == template.id
    )
    if template.total_limit is not None:
        query = query.where(CouponTemplate.issued_count <= template.total_limit - count)
    return bool(await query.returning(CouponTemplate.id))


def _new_coupon(
    template: TemplateRecord,
    member_id: int,
    *,
    campaign_id: int | None,
    slot: int,
    grant_key: str,
    value_fen: int | None,
    now: datetime,
) -> Coupon:
    """A coupon of the template for the member, on its terms as they are now."""
    valid_from, valid_until = template.validity(now)
    return Coupon(
        member=member_id,
        template=template.id,
        campaign=campaign_id,
        slot=slot,
        grant_key=grant_key,
        title=template.title,
        kind=template.kind,
        value_fen=value_fen,
        percent_off=template.percent_off,
        max_discount_fen=template.max_discount_fen,
        min_spend_fen=template.min_spend_fen,
        channels=template.channels,
        store_ids=template.store_ids,
        product_ids=template.product_ids,
        valid_from=valid_from,
        valid_until=valid_until,
        status=CouponStatus.usable,
        created_at=now,
    )


async def _insert_coupon(coupon: Coupon) -> int | None:
    # Nothing, rather than a failed transaction, when a concurrent grant took the slot or the why meanwhile: the
    # transaction may be a payment's, which must not fail for a coupon
    inserted = await Coupon.insert(coupon).on_conflict(action="DO NOTHING").returning(Coupon.id)
    return inserted[0]["id"] if inserted else None


async def grant(
    campaign: CampaignRecord,
    member_id: int,
    *,
    grant_key: str,
    face_fen: int | None,
    now: datetime,
    slot: int | None = None,
) -> int:
    """Inside the caller's write transaction: one coupon of the campaign for the member, at `face_fen` (a fixed
    coupon's value by the campaign's rule; None: the template's), in the member's next slot of the template (as
    counted by the caller, or now). Raises Refused when a limit says no (nothing written); answers the coupon's id.

    The template's row is taken before the campaign's, by every grant and issue, so that transactions granting from
    several campaigns of one template never wait for each other in a circle."""
    template = campaign.template
    if template.expired(now):
        raise Refused("expired")
    slot = slot if slot is not None else await _HELD.run(member_id, template.id) + 1
    if slot > template.per_member_limit:
        raise Refused("limit")
    value_fen = face_fen if face_fen is not None else template.value_fen
    counted = template.counted_fen(value_fen)
    if not await _take_template(template):
        raise Refused("sold_out")
    if not await _take_campaign(campaign, counted):
        await _give_back_counts(campaign, template, counted, campaign_counted=False)
        raise Refused("budget")
    coupon_id = await _insert_coupon(
        _new_coupon(
            template, member_id, campaign_id=campaign.id, slot=slot, grant_key=grant_key, value_fen=value_fen, now=now
        )
    )
    if coupon_id is None:
        await _give_back_counts(campaign, template, counted)
        raise Refused("raced")
    return coupon_id


async def grant_benefit(template_id: int, member_id: int, *, grant_key: str, now: datetime) -> int | None:
    """Inside the caller's write transaction: a coupon of the template that a paid plan gives, once per `grant_key`.
    A benefit is not a campaign's: the template's per-member limit does not count it, its total limit and window
    do (a coupon they refuse is not given, and the transaction goes on). Answers the coupon's id, or None."""
    row = (
        await CouponTemplate.select(*(getattr(CouponTemplate, c) for c in _TEMPLATE_COLUMNS))
        .where(CouponTemplate.id == template_id)
        .first()
    )
    if row is None:
        return None
    template = TemplateRecord.of(row)
    if template.expired(now) or not await _take_template(template):
        logger.info("plan coupon not granted", extra={"template_id": template_id, "member_id": member_id})
        return None
    slot = await _HELD.run(member_id, template.id) + 1
    coupon_id = await _insert_coupon(
        _new_coupon(
            template, member_id, campaign_id=None, slot=slot, grant_key=grant_key, value_fen=template.value_fen, now=now
        )
    )
    if coupon_id is None:  # granted under this key already (or its slot was taken meanwhile)
        await CouponTemplate.update({CouponTemplate.issued_count: CouponTemplate.issued_count - 1}).where(
            CouponTemplate.id == template.id
        )
    return coupon_id


async def withdraw(member_id: int, *, grant_key_prefix: str, now: datetime) -> int:
    """Inside the caller's write transaction: the member's usable coupons granted under keys with that prefix end now
    (they show as expired); answers how many."""
    keys = Coupon.grant_key.like(f"{grant_key_prefix}%")
    usable = (Coupon.status == CouponStatus.usable) & (Coupon.valid_until > now)
    withdrawn = (
        await Coupon.update({Coupon.valid_until: now})
        .where((Coupon.member == member_id) & keys & usable)
        .returning(Coupon.id)
    )
    return len(withdrawn)


async def used_under(member_id: int, *, grant_key_prefix: str) -> int:
    """How many of the member's coupons granted under keys with that prefix are used."""
    keys = Coupon.grant_key.like(f"{grant_key_prefix}%")
    return await Coupon.count().where((Coupon.member == member_id) & keys & (Coupon.status == CouponStatus.used))


async def _give_back_counts(
    campaign: CampaignRecord, template: TemplateRecord, counted_fen: int, *, campaign_counted: bool = True
) -> None:
    """A grant refused after it was counted: the template's count (and the campaign's count and budget) back, the
    transaction goes on."""
    await CouponTemplate.update({CouponTemplate.issued_count: CouponTemplate.issued_count - 1}).where(
        CouponTemplate.id == template.id
    )
    if campaign_counted:
        await CouponCampaign.update(
            {
                CouponCampaign.budget_used_fen: CouponCampaign.budget_used_fen - counted_fen,
                CouponCampaign.issued_count: CouponCampaign.issued_count - 1,
            }
        ).where(CouponCampaign.id == campaign.id)


async def grant_quietly(
    campaign: CampaignRecord, member_id: int, *, grant_key: str, face_fen: int | None, now: datetime
) -> int | None:
    """A grant that a limit may refuse without failing what set it off (an enrolment, a referral)."""
    try:
        return await grant(campaign, member_id, grant_key=grant_key, face_fen=face_fen, now=now)
    except Refused as refused:
        logger.info(
            "coupon not granted", extra={"campaign_id": campaign.id, "member_id": member_id, "why": refused.why}
        )
        return None


async def grant_valued(campaign: CampaignRecord, member_id: int, *, grant_key: str, now: datetime) -> int | None:
    """Inside the caller's write transaction: the member's coupon at the face value the campaign's rule gives them
    (none when it gives them none), unless a limit refuses it."""
    faces = await face_values(campaign, [member_id], now=now)
    if member_id not in faces:
        return None
    return await grant_quietly(campaign, member_id, grant_key=grant_key, face_fen=faces[member_id], now=now)


async def _run(sql: str, args: list[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in await get_engine().run_querystring(QueryString(sql, *args))]


async def _matching(segment_id: int, member_ids: list[int], *, now: datetime) -> set[int]:
    """Which of these members the segment holds now (in SQL, like every segment question)."""
    segment = await membership.find_segment(segment_id)
    if segment is None or not member_ids:
        return set()
    sql, args = segments.members_matching(segment.rules, now=now)
    rows = await _run(f'SELECT x."id" FROM ({sql}) x WHERE x."id" IN ({marks(member_ids)})', [*args, *member_ids])
    return {row["id"] for row in rows}


async def reward_referral(referral_id: int, *, referrer_id: int, referee_id: int, now: datetime) -> None:
    """Inside the transaction that qualified a referral: the coupons of every referral reward campaign running now,
    to the referrer, the referee or both, as each campaign says."""
    for campaign in await running_campaigns(CouponTrigger.referral_reward, now):
        for role, member_id in ((RewardTo.referrer, referrer_id), (RewardTo.referee, referee_id)):
            if campaign.reward_to in (RewardTo.both, role) and await in_audience(campaign, member_id, now=now):
                key = f"referral:{campaign.id}:{referral_id}:{role.value}"
                await grant_valued(campaign, member_id, grant_key=key, now=now)


async def face_values(campaign: CampaignRecord, member_ids: list[int], *, now: datetime) -> dict[int, int | None]:
    """Each member's face value by the campaign's rule (千人千券; absent: the rule gives them none); without a rule,
    every member's is the template's (None)."""
    rule = campaign.value_rule
    if rule is None or not member_ids:
        return {member_id: None for member_id in member_ids}
    values: dict[int, int] = {}
    if rule.by == "spend":
        sql, args = segments.spend_by_member(rule.window_days, now=now)
        rows = await _run(
            f'SELECT s."member", s."spend_fen" FROM ({sql}) s WHERE s."member" IN ({marks(member_ids)})',
            [*args, *member_ids],
        )
        spent = {row["member"]: row["spend_fen"] for row in rows}
        bands = sorted(rule.spend_bands or (), key=lambda band: band.min_spend_fen, reverse=True)
        for member_id in member_ids:
            reached = next((band for band in bands if spent.get(member_id, 0) >= band.min_spend_fen), None)
            if reached is not None:
                values[member_id] = reached.value_fen
    elif rule.by == "tier":
        held = await _run(
            f'SELECT m."id", m."tier_code" FROM "member" m WHERE m."id" IN ({marks(member_ids)})', list(member_ids)
        )
        by_tier = {band.tier_code: band.value_fen for band in rule.tier_bands or ()}
        values.update({row["id"]: by_tier[row["tier_code"]] for row in held if row["tier_code"] in by_tier})
    else:
        left = list(member_ids)
        for band in rule.segment_bands or ():
            held = await _matching(band.segment_id, left, now=now)
            values.update({member_id: band.value_fen for member_id in held})
            left = [member_id for member_id in left if member_id not in held]
    if rule.default_value_fen is not None:
        for member_id in member_ids:
            values.setdefault(member_id, rule.default_value_fen)
    return {member_id: values[member_id] for member_id in member_ids if member_id in values}


async def in_audience(campaign: CampaignRecord, member_id: int, *, now: datetime) -> bool:
    """Whether the campaign's segment holds the member now (every member, without one)."""
    if campaign.segment_id is None:
        return True
    return member_id in await _matching(campaign.segment_id, [member_id], now=now)


async def claim(campaign_id: int, member_id: int) -> "CouponRecord":
    """The member claims a coupon of a `claim` campaign: once per slot of the template's per-member limit, never past
    its total limit or the campaign's budget, under any number of concurrent claims."""
    now = utcnow()
    campaign = await get_campaign(campaign_id)
    if campaign.trigger is not CouponTrigger.claim:
        raise WrongTrigger(details={"trigger": campaign.trigger.value}, campaign_id=campaign_id)
    if not campaign.runs(now):
        raise CampaignNotOpen(
            details={"startsAt": campaign.starts_at.isoformat(), "endsAt": campaign.ends_at.isoformat()}
        )
    await _ensure_audience(campaign, member_id, now=now)
    faces = await face_values(campaign, [member_id], now=now)
    if member_id not in faces:
        raise _not_for_you(campaign)
    for _ in range(3):  # a concurrent claim of the same member took the slot this one counted on: count again
        try:
            async with write_transaction():
                slot = await _HELD.run(member_id, campaign.template.id) + 1
                coupon_id = await grant(
                    campaign,
                    member_id,
                    grant_key=f"claim:{campaign.id}:{slot}",
                    face_fen=faces[member_id],
                    now=now,
                    slot=slot,
                )
        except Refused as refused:
            if refused.why == "raced":
                continue
            if refused.why == "limit":
                raise ClaimLimitReached(details={"perMemberLimit": campaign.template.per_member_limit}) from None
            if refused.why == "expired":
                raise CampaignNotOpen(details={"validUntil": str(campaign.template.valid_until)}) from None
            raise SoldOut(details={"campaignId": campaign.id}) from None
        coupon = await get_coupon(coupon_id)
        assert coupon is not None
        return coupon
    raise ClaimLimitReached(details={"perMemberLimit": campaign.template.per_member_limit})


def _not_for_you(campaign: CampaignRecord) -> Exception:
    """A campaign for other members does not exist for this one."""
    return CampaignNotFound(campaign_id=campaign.id)


async def _ensure_audience(campaign: CampaignRecord, member_id: int, *, now: datetime) -> None:
    if not await in_audience(campaign, member_id, now=now):
        raise _not_for_you(campaign)


async def claimable(member_id: int) -> list[CampaignRecord]:
    """Claim campaigns running now that the member may claim (in their audience)."""
    now = utcnow()
    return [
        campaign
        for campaign in await running_campaigns(CouponTrigger.claim, now)
        if await in_audience(campaign, member_id, now=now)
    ]


# Manual issues to a segment --------------------------------------------------------------------------

ISSUE_BATCH = 500  # members per transaction: the write lock is held for one batch at a time


@dataclass(frozen=True, slots=True)
class IssueRecord:
    id: int
    campaign: int
    status: IssueStatus
    cursor: int
    issued: int
    skipped: int
    issued_fen: int
    budget_left_fen: int | None


_ISSUE_COLUMNS = ("id", "campaign", "status", "cursor", "issued", "skipped", "issued_fen")


async def get_issue(issue_id: int) -> IssueRecord | None:
    row = await (
        CouponIssue.select(
            *(getattr(CouponIssue, name) for name in _ISSUE_COLUMNS),
            CouponIssue.campaign.budget_fen.as_alias("budget_fen"),
            CouponIssue.campaign.budget_used_fen.as_alias("budget_used_fen"),
        )
        .where(CouponIssue.id == issue_id)
        .first()
    )
    if row is None:
        return None
    budget, used = row.pop("budget_fen"), row.pop("budget_used_fen")
    return IssueRecord(
        **{**row, "status": IssueStatus(row["status"])}, budget_left_fen=None if budget is None else budget - used
    )


async def issue(campaign_id: int, *, idempotency_key: str, staff_id: int) -> tuple[IssueRecord, bool]:
    """Issue a manual campaign to its segment: once per key (the same key again, even at the same moment, runs or
    answers the same issue), batch by batch; answers the issue as it ended and whether this call began it."""
    campaign = await get_campaign(campaign_id)
    if campaign.trigger is not CouponTrigger.manual:
        raise WrongTrigger(details={"trigger": campaign.trigger.value}, campaign_id=campaign_id)
    now = utcnow()
    existing = (
        await CouponIssue.select(CouponIssue.id)
        .where((CouponIssue.campaign == campaign_id) & (CouponIssue.idempotency_key == idempotency_key))
        .first()
    )
    began = existing is None
    if existing is not None:
        issue_id = existing["id"]
    else:
        if not campaign.runs(now) or campaign.template.expired(now):
            raise CampaignNotOpen(
                details={"startsAt": campaign.starts_at.isoformat(), "endsAt": campaign.ends_at.isoformat()}
            )
        try:
            async with write_transaction():
                issue_id = await insert_row(
                    CouponIssue,
                    campaign=campaign_id,
                    idempotency_key=idempotency_key,
                    status=IssueStatus.running,
                    created_by=staff_id,
                    created_at=now,
                    updated_at=now,
                )
                await audit.record(
                    "coupon_campaign.issue",
                    "coupon_campaign",
                    campaign_id,
                    after={"issue_id": issue_id, "key": idempotency_key},
                )
        except Exception as error:
            if not is_unique_violation(error):
                raise
            began = False
            raced = (
                await CouponIssue.select(CouponIssue.id)
                .where((CouponIssue.campaign == campaign_id) & (CouponIssue.idempotency_key == idempotency_key))
                .first()
            )
            issue_id = raced["id"]
    while await _issue_batch(issue_id, campaign, now=now):
        pass
    issued = await get_issue(issue_id)
    assert issued is not None
    if began:
        logger.info(
            "coupon campaign issued",
            extra={"campaign_id": campaign_id, "issue_id": issue_id, "issued": issued.issued, "staff_id": staff_id},
        )
    return issued, began


_HELD_BY = (
    'SELECT c."member", COUNT(*) AS "held" FROM "coupon" c WHERE c."template" = {{}} AND c."member" IN ({}) '
    'GROUP BY c."member"'
)


async def _issue_batch(issue_id: int, campaign: CampaignRecord, *, now: datetime) -> bool:
    """One batch of an issue. Who is in it, and at what value, is read first and outside any write (a segment's
    rules may read many rows); then one short transaction takes the batch from where the issue's cursor stood (a
    compare-and-set: a second runner of the same issue finds it moved, and reads again), holds the template's and
    the campaign's rows and issues. Answers whether any is left."""
    template = campaign.template
    current = await CouponIssue.select(CouponIssue.status, CouponIssue.cursor).where(CouponIssue.id == issue_id).first()
    if current["status"] != IssueStatus.running:
        return False
    cursor = current["cursor"]
    segment = await membership.find_segment(campaign.segment_id) if campaign.segment_id is not None else None
    if segment is not None:
        sql, args = segments.members_matching(segment.rules, now=now)
    else:  # a manual campaign without a segment is for every member
        sql, args = 'SELECT m."id" FROM "member" m WHERE m."status" = {}', [MemberStatus.active.value]
    with heavy_reads():
        rows = await _run(
            f'SELECT x."id" FROM ({sql}) x WHERE x."id" > {{}} ORDER BY x."id" LIMIT {{}}', [*args, cursor, ISSUE_BATCH]
        )
        member_ids = [row["id"] for row in rows]
        faces = await face_values(campaign, member_ids, now=now)
    async with write_transaction():
        moved = (
            await CouponIssue.update({CouponIssue.updated_at: now})
            .where(
                (CouponIssue.id == issue_id)
                & (CouponIssue.cursor == cursor)
                & (CouponIssue.status == IssueStatus.running)
            )
            .returning(CouponIssue.id)
        )
        if not moved:
            return True  # another runner took this batch meanwhile: look again
        if not member_ids:
            await CouponIssue.update({CouponIssue.status: IssueStatus.done}).where(CouponIssue.id == issue_id)
            return False
        # The template's and campaign's rows held (PostgreSQL's row locks, the template's first as every grant takes
        # them; SQLite writes one at a time): the total limit, the budget and the members' slots stay as read here
        issued_so_far = await hold(CouponTemplate, template.id, CouponTemplate.issued_count)
        spent = await hold(CouponCampaign, campaign.id, CouponCampaign.budget_used_fen)
        budget_left = None if campaign.budget_fen is None else campaign.budget_fen - spent
        total_left = None if template.total_limit is None else template.total_limit - issued_so_far
        held = {
            row["member"]: row["held"]
            for row in await _run(_HELD_BY.format(marks(member_ids)), [template.id, *member_ids])
        }
        coupons, skipped, counted_fen, reached, stop = [], 0, 0, cursor, None
        for member_id in member_ids:
            slot = held.get(member_id, 0) + 1
            if member_id not in faces or slot > template.per_member_limit:
                skipped, reached = skipped + 1, member_id
                continue
            value_fen = faces[member_id] if faces[member_id] is not None else template.value_fen
            counted = template.counted_fen(value_fen)
            if budget_left is not None and counted_fen + counted > budget_left:
                stop = IssueStatus.budget_spent
                break
            if total_left is not None and len(coupons) >= total_left:
                stop = IssueStatus.limit_reached
                break
            coupons.append(
                _new_coupon(
                    template,
                    member_id,
                    campaign_id=campaign.id,
                    slot=slot,
                    grant_key=f"issue:{issue_id}",
                    value_fen=value_fen,
                    now=now,
                )
            )
            counted_fen, reached = counted_fen + counted, member_id
        issued = 0
        if coupons:
            inserted = await Coupon.insert(*coupons).on_conflict(action="DO NOTHING").returning(Coupon.value_fen)
            issued = len(inserted)
            skipped += len(coupons) - issued  # a slot a grant took a moment before this batch held the template
            counted_fen = sum(template.counted_fen(row["value_fen"]) for row in inserted)
            taken = issued == 0 or (
                await _take_template(template, issued) and await _take_campaign(campaign, counted_fen, issued)
            )
            if not taken:  # the rows are held: only a bug gets here
                raise RuntimeError("coupon limits moved while an issue's batch held them")
        status = stop or (IssueStatus.done if len(member_ids) < ISSUE_BATCH else IssueStatus.running)
        await CouponIssue.update(
            {
                CouponIssue.cursor: reached,
                CouponIssue.status: status,
                CouponIssue.issued: CouponIssue.issued + issued,
                CouponIssue.skipped: CouponIssue.skipped + skipped,
                CouponIssue.issued_fen: CouponIssue.issued_fen + counted_fen,
                CouponIssue.updated_at: now,
            }
        ).where(CouponIssue.id == issue_id)
        return status is IssueStatus.running


# A member's coupons -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CouponRecord:
    id: int
    member: int
    template: int
    campaign: int | None
    title: str
    kind: CouponKind
    value_fen: int | None
    percent_off: int | None
    max_discount_fen: int | None
    min_spend_fen: int
    channels: str
    store_ids: str
    product_ids: str
    valid_from: datetime
    valid_until: datetime
    status: CouponStatus
    order: int | None
    used_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> "CouponRecord":
        row = {name: row[name] for name in cls.__slots__}
        row["kind"], row["status"] = CouponKind(row["kind"]), CouponStatus(row["status"])
        return cls(**row)

    def shown_status(self, now: datetime) -> str:
        if self.status is CouponStatus.used:
            return "used"
        return "expired" if self.valid_until <= now else "usable"

    def discount(self, amount_fen: int, eligible_fen: int) -> int:
        """What it takes off an order of `amount_fen`, of which `eligible_fen` is on the products it is for: never
        more than those, and never the whole order (WeChat Pay takes at least 1 fen)."""
        if self.kind is CouponKind.fixed:
            assert self.value_fen is not None
            off = self.value_fen
        else:
            assert self.percent_off is not None
            off = eligible_fen * self.percent_off // 100
            if self.max_discount_fen is not None:
                off = min(off, self.max_discount_fen)
        return max(min(off, eligible_fen, amount_fen - 1), 0)


_COUPON = Prepared(lambda coupon_id: Coupon.select(*Coupon.all_columns()).where(Coupon.id == coupon_id).first())


async def get_coupon(coupon_id: int) -> CouponRecord | None:
    row = await _COUPON.run(coupon_id)
    return CouponRecord.of(row) if row is not None else None


async def member_coupons(
    member_id: int, *, shown: str, limit: int, after: tuple[datetime, int] | None = None
) -> list[CouponRecord]:
    """The member's coupons of one shown status: usable ones expiring soonest first; expired and used ones latest
    validity first. `after` is the (valid_until, id) the page before ended on."""
    now = utcnow()
    query = Coupon.select(*Coupon.all_columns()).where(Coupon.member == member_id)
    if shown == "used":
        query = query.where(Coupon.status == CouponStatus.used)
    else:
        query = query.where(Coupon.status == CouponStatus.usable)
        query = query.where(Coupon.valid_until > now if shown == "usable" else Coupon.valid_until <= now)
    ascending = shown == "usable"
    if after is not None:
        until, coupon_id = after
        if ascending:
            query = query.where(
                (Coupon.valid_until > until) | ((Coupon.valid_until == until) & (Coupon.id > coupon_id))
            )
        else:
            query = query.where(
                (Coupon.valid_until < until) | ((Coupon.valid_until == until) & (Coupon.id < coupon_id))
            )
    query = query.order_by(Coupon.valid_until, Coupon.id, ascending=ascending).limit(limit)
    return [CouponRecord.of(row) for row in await query]


# Using a coupon on an order ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """The coupon an order will use (None: none), and what it takes off."""

    coupon_id: int | None
    discount_fen: int


NO_COUPON = Applied(coupon_id=None, discount_fen=0)


def _refuse(reason: str, coupon_id: int, **details: Any) -> CouponNotUsable:
    return CouponNotUsable(details={"couponId": coupon_id, "reason": reason, **details})


async def _eligible_fen(coupon: CouponRecord, lines: tuple[LineItem, ...], amount_fen: int) -> int | None:
    """The part of the order on the coupon's products (all of it when it names none); None: none of it is."""
    if not coupon.product_ids:
        return amount_fen
    sku_ids = [line.sku_id for line in lines if line.sku_id is not None]
    if not sku_ids:
        return None
    products = {row["id"]: row["product"] for row in await Sku.select(Sku.id, Sku.product).where(Sku.id.is_in(sku_ids))}
    wanted = set(ids_of(coupon.product_ids))
    eligible = sum(line.amount_fen for line in lines if products.get(line.sku_id) in wanted)
    return eligible or None


async def apply(
    coupon_id: int | None,
    *,
    member_id: int | None,
    channel: OrderKind,
    store_id: int,
    amount_fen: int,
    lines: tuple[LineItem, ...] = (),
    now: datetime,
) -> Applied:
    """Before the order is placed: whether the member's coupon may be used on it, and what it takes off. Every
    refusal is `coupons.not_usable` with its reason (not_yours, used, expired, not_started, channel, store,
    products, min_spend). No coupon named: NO_COUPON."""
    if coupon_id is None:
        return NO_COUPON
    coupon = await get_coupon(coupon_id)
    if coupon is None or member_id is None or coupon.member != member_id:
        raise _refuse("not_yours", coupon_id)
    if coupon.status is CouponStatus.used:
        raise _refuse("used", coupon_id)
    if coupon.valid_until <= now:
        raise _refuse("expired", coupon_id, validUntil=coupon.valid_until.isoformat())
    if coupon.valid_from > now:
        raise _refuse("not_started", coupon_id, validFrom=coupon.valid_from.isoformat())
    if channel.value not in coupon.channels.split(","):
        raise _refuse("channel", coupon_id, channels=coupon.channels.split(","))
    if coupon.store_ids and store_id not in ids_of(coupon.store_ids):
        raise _refuse("store", coupon_id, storeIds=ids_of(coupon.store_ids))
    eligible = await _eligible_fen(coupon, lines, amount_fen)
    if eligible is None:
        raise _refuse("products", coupon_id, productIds=ids_of(coupon.product_ids))
    if eligible < coupon.min_spend_fen:
        raise _refuse("min_spend", coupon_id, minSpendFen=coupon.min_spend_fen)
    return Applied(coupon_id=coupon.id, discount_fen=coupon.discount(amount_fen, eligible))


_USE = Prepared(
    lambda order_id, now, coupon_id, member_id, still_valid: (
        Coupon.update({Coupon.status: CouponStatus.used, Coupon.order: order_id, Coupon.used_at: now})
        .where(
            (Coupon.id == coupon_id)
            & (Coupon.member == member_id)
            & (Coupon.status == CouponStatus.usable)
            & (Coupon.valid_until > still_valid)
        )
        .returning(Coupon.id)
    )
)


async def use(applied: Applied, *, member_id: int | None, order_id: int, now: datetime) -> None:
    """Inside the transaction that places the order: the coupon is the order's, by a guarded update (of two orders
    racing with one coupon, one has it and the other's transaction fails `coupons.not_usable`, reason used)."""
    if applied.coupon_id is None:
        return
    if member_id is None or not await _USE.run(order_id, now, applied.coupon_id, member_id, now):
        raise _refuse("used", applied.coupon_id)


_GIVE_BACK = Prepared(
    lambda coupon_id, order_id: (
        Coupon.update({Coupon.status: CouponStatus.usable, Coupon.order: None, Coupon.used_at: None})
        .where((Coupon.id == coupon_id) & (Coupon.order == order_id) & (Coupon.status == CouponStatus.used))
        .returning(Coupon.id)
    )
)


async def give_back(coupon_id: int, order_id: int) -> bool:
    """Inside the transaction of the order's outcome: the coupon it used is usable again (within its validity)."""
    return bool(await _GIVE_BACK.run(coupon_id, order_id))


# Merges --------------------------------------------------------------------------------------------


async def move_coupons(survivor_id: int, merged_id: int) -> int:
    """The merged member's coupons become the survivor's, each template's after the survivor's own of it (their
    slots stay 1..n), and each why kept apart from the survivor's (a welcome coupon each: both are kept)."""
    held = {
        row["template"]: row["slots"]
        for row in await _run(
            'SELECT c."template", MAX(c."slot") AS "slots" FROM "coupon" c WHERE c."member" = {} GROUP BY c."template"',
            [survivor_id],
        )
    }
    moved = 0
    for template_id in {
        row["template"] for row in await Coupon.select(Coupon.template).where(Coupon.member == merged_id)
    }:
        rows = (
            await Coupon.update(
                {
                    Coupon.member: survivor_id,
                    Coupon.slot: Coupon.slot + held.get(template_id, 0),
                    Coupon.grant_key: Coupon.grant_key + f"~m{merged_id}",
                }
            )
            .where((Coupon.member == merged_id) & (Coupon.template == template_id))
            .returning(Coupon.id)
        )
        moved += len(rows)
    return moved
