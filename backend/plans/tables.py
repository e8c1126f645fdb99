from enum import Enum

from piccolo.columns import ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from backend.members.tables import Member
from backend.membership.tables import MembershipPlan
from backend.orders.tables import Order


class PurchaseStatus(str, Enum):
    """`pending_payment -> active -> refunded`, or `pending_payment -> cancelled` (closed unpaid)."""

    pending_payment = "pending_payment"
    active = "active"  # paid: its days are part of the member's paid period
    cancelled = "cancelled"
    refunded = "refunded"  # its days were taken off the period again


class MembershipPurchase(Table, tablename="membership_purchase"):
    """One purchase of a plan: the order that paid for it and the days it added to the member's period."""

    order = ForeignKey(Order, null=False, unique=True, on_delete=OnDelete.restrict)
    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    plan = ForeignKey(MembershipPlan, null=False, on_delete=OnDelete.restrict)
    status = Varchar(length=16, choices=PurchaseStatus, default=PurchaseStatus.pending_payment)
    days = Integer()  # the plan's when it was bought
    period_from = Timestamptz(null=True, default=None)  # the days it added: from the period's end then (or payment)
    period_until = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
