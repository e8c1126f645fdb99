"""The one Piccolo app: every table of every domain, migrations in the top-level migrations/."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from backend.audit.tables import AuditEntry
from backend.catalogue.tables import Category, Product, ProductImage, Sku, StoreInventory
from backend.coupons.tables import Coupon, CouponCampaign, CouponIssue, CouponTemplate
from backend.groupbuy.tables import Campaign, CampaignStore, Group, MemberUnits, Seat
from backend.hq.tables import ReportDay, StoreDay
from backend.mall.tables import MallOrder, MallRefundLine
from backend.members.tables import Member, MemberIdentity, MemberMerge
from backend.membership.tables import MembershipPlan, MemberTag, PaidMembership, Segment, Tag, Tier
from backend.orders.tables import Order, OrderLine
from backend.payments.tables import PaymentRefund, PaymentTrade
from backend.plans.tables import MembershipPurchase
from backend.points.tables import PointsAccount, PointsEntry, PointsLot, PointsLotUse
from backend.posters.tables import MemberAvatar
from backend.referrals.tables import Referral, ReferralCampaign, ReferralReward, ReferrerDay, ShareLink
from backend.sandbox.tables import (
    SandboxLoginCode,
    SandboxPaymentCode,
    SandboxPhoneCode,
    SandboxRefund,
    SandboxTrade,
)
from backend.stores.tables import Staff, StaffStore, Store

TABLES = [
    Store,
    Staff,
    StaffStore,
    Member,
    MemberIdentity,
    MemberMerge,
    SandboxLoginCode,
    SandboxPhoneCode,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsLotUse,
    SandboxPaymentCode,
    SandboxTrade,
    Order,
    OrderLine,
    PaymentTrade,
    PaymentRefund,
    SandboxRefund,
    Category,
    Product,
    Sku,
    StoreInventory,
    ProductImage,
    Campaign,
    CampaignStore,
    Group,
    Seat,
    MemberUnits,
    ReferralCampaign,
    ShareLink,
    Referral,
    ReferralReward,
    ReferrerDay,
    MemberAvatar,
    MallOrder,
    MallRefundLine,
    Tag,
    MemberTag,
    Segment,
    CouponTemplate,
    CouponCampaign,
    Coupon,
    CouponIssue,
    Tier,
    MembershipPlan,
    PaidMembership,
    MembershipPurchase,
    AuditEntry,
    StoreDay,
    ReportDay,
]

APP_CONFIG = AppConfig(
    app_name="backend",
    migrations_folder_path=str(Path(__file__).resolve().parent.parent / "migrations"),
    table_classes=TABLES,
    migration_dependencies=[],
    commands=[],
)
