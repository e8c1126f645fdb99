from enum import Enum

from piccolo.columns import BigInt, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.members.tables import Member
from backend.membership.tables import Segment
from backend.orders.tables import Order
from backend.stores.tables import Staff


class CouponKind(str, Enum):
    fixed = "fixed"  # a face value off
    percent = "percent"  # a percentage off, up to a cap


class CouponChannel(str, Enum):
    """The order kinds a coupon may be used on (a membership is never bought with one)."""

    till = "till"
    store_code = "store_code"
    mall = "mall"
    groupbuy = "groupbuy"


class CouponTrigger(str, Enum):
    enrolment = "enrolment"  # each member enrolled while the campaign runs, in the enrolment's transaction
    referral_reward = "referral_reward"  # the referrer and/or referee when a referral qualifies
    manual = "manual"  # HQ issues it to a segment now
    claim = "claim"  # members claim it themselves


class RewardTo(str, Enum):
    referrer = "referrer"
    referee = "referee"
    both = "both"


class CouponStatus(str, Enum):
    """`usable -> used`, and back to usable when the order that used it is cancelled or refunded in full. An
    expired coupon is a usable one past its `valid_until`: the status never changes with the clock."""

    usable = "usable"
    used = "used"


class IssueStatus(str, Enum):
    running = "running"
    done = "done"  # every member of the segment was reached
    budget_spent = "budget_spent"  # stopped before the next coupon would have passed the budget
    limit_reached = "limit_reached"  # the template's total limit is issued


class CouponTemplate(Table, tablename="coupon_template"):
    """What a coupon gives and where it works. A coupon copies these terms when it is issued, so that an edit
    never changes a coupon a member holds."""

    title = Varchar(length=60)
    kind = Varchar(length=16, choices=CouponKind)
    value_fen = BigInt(null=True, default=None)  # fixed: the face value (a campaign's value rule may set its own)
    percent_off = Integer(null=True, default=None)  # percent: 1..99
    max_discount_fen = BigInt(null=True, default=None)  # percent: the cap
    min_spend_fen = BigInt(default=0)  # on the order's amount before points
    channels = Varchar(length=64)  # CouponChannel values, comma-separated
    store_ids = Text(default="")  # comma-separated; empty: every store
    product_ids = Text(default="")  # comma-separated; empty: any product (and orders without products)
    valid_days = Integer(null=True, default=None)  # valid this many days from issue, or
    valid_from = Timestamptz(null=True, default=None)  # ... within this fixed window
    valid_until = Timestamptz(null=True, default=None)
    per_member_limit = Integer(default=1)
    total_limit = Integer(null=True, default=None)
    issued_count = Integer(default=0)  # raised by a guarded update: never past total_limit
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    coupon_template_value_fits_kind = Check(
        '("kind" = \'fixed\' AND "value_fen" > 0 AND "percent_off" IS NULL) OR '
        '("kind" = \'percent\' AND "percent_off" BETWEEN 1 AND 99 AND "value_fen" IS NULL)'
    )
    coupon_template_one_validity = Check(
        '("valid_days" > 0 AND "valid_from" IS NULL AND "valid_until" IS NULL) OR '
        '("valid_days" IS NULL AND "valid_from" < "valid_until")'
    )
    coupon_template_limits = Check(
        '"min_spend_fen" >= 0 AND "per_member_limit" >= 1 AND "issued_count" >= 0 '
        'AND ("total_limit" IS NULL OR "issued_count" <= "total_limit")'
    )


class CouponCampaign(Table, tablename="coupon_campaign"):
    """Who gets a template's coupons, when, at what face value, and within what budget."""

    template = ForeignKey(CouponTemplate, null=False, on_delete=OnDelete.restrict, index=True)
    trigger = Varchar(length=24, choices=CouponTrigger)
    segment = ForeignKey(Segment, null=True, on_delete=OnDelete.restrict)  # who may have it (none: every member)
    value_rule = Text(default="")  # JSON: each member's face value (千人千券); empty: the template's
    reward_to = Varchar(length=16, null=True, default=None, choices=RewardTo)  # referral_reward's
    budget_fen = BigInt(null=True, default=None)  # the face values issued never pass it
    budget_used_fen = BigInt(default=0)
    issued_count = Integer(default=0)
    starts_at = Timestamptz()
    ends_at = Timestamptz()
    closed_at = Timestamptz(null=True, default=None)  # closed early by HQ (its end moved to then)
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()

    coupon_campaign_within_budget = Check(
        '"budget_used_fen" >= 0 AND ("budget_fen" IS NULL OR "budget_used_fen" <= "budget_fen")'
    )
    coupon_campaign_runs_forward = Check('"starts_at" < "ends_at"')


class Coupon(Table, tablename="coupon"):
    """One member's coupon, with the terms it was issued on; used by one order at a time.

    `slot` is the member's n-th coupon of its template: unique, and never past the template's per-member limit,
    so two concurrent grants to one member cannot both take the last one. `grant` says why it was issued
    (`grant_key`: `enrolment:7`, `issue:3`, `referral:7:12:referrer`, `claim:5:1`), once per member.
    """

    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    template = ForeignKey(CouponTemplate, null=False, on_delete=OnDelete.restrict)
    campaign = ForeignKey(CouponCampaign, null=True, on_delete=OnDelete.restrict)
    slot = Integer()
    grant_key = Varchar(length=64)
    title = Varchar(length=60)
    kind = Varchar(length=16, choices=CouponKind)
    value_fen = BigInt(null=True, default=None)
    percent_off = Integer(null=True, default=None)
    max_discount_fen = BigInt(null=True, default=None)
    min_spend_fen = BigInt(default=0)
    channels = Varchar(length=64)
    store_ids = Text(default="")
    product_ids = Text(default="")
    valid_from = Timestamptz()
    valid_until = Timestamptz()
    status = Varchar(length=16, choices=CouponStatus, default=CouponStatus.usable)
    order = ForeignKey(Order, null=True, on_delete=OnDelete.restrict, index=True)  # the order using it
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()

    coupon_one_per_slot = Unique([member, template, slot])
    coupon_one_per_grant = Unique([member, grant_key])
    coupon_used_by_an_order = Check('("status" = \'used\') = ("order" IS NOT NULL)')
    coupon_value_fits_kind = Check(
        '("kind" = \'fixed\' AND "value_fen" > 0) OR ("kind" = \'percent\' AND "percent_off" BETWEEN 1 AND 99)'
    )


class CouponIssue(Table, tablename="coupon_issue"):
    """A manual campaign's issue to its segment: one per idempotency key, run batch by batch from `cursor` (the
    last member id reached), each batch one short transaction."""

    campaign = ForeignKey(CouponCampaign, null=False, on_delete=OnDelete.restrict)
    idempotency_key = Varchar(length=64)
    status = Varchar(length=16, choices=IssueStatus, default=IssueStatus.running)
    cursor = Integer(default=0)
    issued = Integer(default=0)
    skipped = Integer(default=0)  # in the segment, but at their per-member limit or with no value by the rule
    issued_fen = BigInt(default=0)
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()
    updated_at = Timestamptz()

    coupon_issue_one_per_key = Unique([campaign, idempotency_key])
