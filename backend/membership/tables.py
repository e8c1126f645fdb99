from piccolo.columns import BigInt, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from backend.members.tables import Member
from backend.stores.tables import Staff


class Tag(Table, tablename="tag"):
    """A label HQ puts on members (口味偏好: 榴莲控), in an optional group ("" for none)."""

    name = Varchar(length=50)
    group_name = Varchar(length=50, default="")
    created_at = Timestamptz()
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)

    tag_one_name_per_group = Unique([group_name, name])
    tag_has_a_name = Check("\"name\" <> ''")


class MemberTag(Table, tablename="member_tag"):
    """A tag on a member, once; set by HQ or by a manager of a store the member belongs to."""

    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)  # a member's tags
    tag = ForeignKey(Tag, null=False, on_delete=OnDelete.restrict)
    created_at = Timestamptz()
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)

    # Also the index a segment's tag rule reads: the members holding a tag.
    member_tag_once = Unique([tag, member])


class Segment(Table, tablename="segment"):
    """Rules over members, kept as HQ wrote them (JSON); who matches is decided when it is read."""

    name = Varchar(length=100)
    rules = Text()
    created_at = Timestamptz()
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)


class Tier(Table, tablename="tier"):
    """A rung of HQ's ladder: a member holds the highest rung whose `min_growth` their growth reaches."""

    code = Varchar(length=32, unique=True)
    name = Varchar(length=50)
    min_growth = BigInt(unique=True)  # fen paid, less refunds
    points_multiplier_percent = Integer(default=100)  # 150: half as many points again
    discount_percent = Integer(default=0)  # taken off a till or store-code payment; 0: none

    tier_terms = Check(
        '"min_growth" >= 0 AND "points_multiplier_percent" BETWEEN 100 AND 1000 AND "discount_percent" BETWEEN 0 AND 50'
    )


class MembershipPlan(Table, tablename="membership_plan"):
    """A paid membership on sale (心享会员): what it costs, how long it lasts, and what it gives meanwhile."""

    code = Varchar(length=32, unique=True)
    title = Varchar(length=60)
    price_fen = BigInt()
    days = Integer()
    points_multiplier_percent = Integer(default=100)
    member_price = Boolean(default=True)  # the mall's member prices apply
    coupon_template_ids = Text(default="")  # issued at purchase and each month after; comma-separated
    on_sale = Boolean(default=True)
    created_at = Timestamptz()
    created_by = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)

    membership_plan_terms = Check(
        '"price_fen" > 0 AND "days" BETWEEN 1 AND 3660 AND "points_multiplier_percent" BETWEEN 100 AND 1000'
    )


class PaidMembership(Table, tablename="paid_membership"):
    """A member's paid period, one row per member, extended by each purchase of a plan.

    It is also the deadline row of the plan's monthly coupons: `coupons_due_at` is the next coupon day (the day
    of the month the period began, in business time), claimed by a compare-and-set, so that however many
    workers sweep, each month's coupons are issued once; NULL once the period has ended."""

    member = ForeignKey(Member, null=False, unique=True, on_delete=OnDelete.restrict)
    plan = ForeignKey(MembershipPlan, null=False, on_delete=OnDelete.restrict)  # its latest purchase's
    started_at = Timestamptz()
    active_until = Timestamptz()
    coupon_day = Integer()  # 1..31; a month without that day has its coupons on its last day
    coupons_due_at = Timestamptz(null=True, default=None, index=True)
    months_issued = Integer(default=0)  # monthly rounds issued after the purchase's own

    paid_membership_forward = Check(
        '"started_at" < "active_until" AND "coupon_day" BETWEEN 1 AND 31 AND "months_issued" >= 0'
    )
