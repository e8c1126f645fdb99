from enum import Enum

from piccolo.columns import BigInt, ForeignKey, Integer, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Unique
from piccolo.table import Table

from backend.stores.tables import Staff, Store


class EnrolmentChannel(str, Enum):
    miniprogram = "miniprogram"
    cashier = "cashier"
    referral = "referral"


class MergeReason(str, Enum):
    phone = "phone"
    unionid = "unionid"
    hq = "hq"


class MemberStatus(str, Enum):
    active = "active"
    merged = "merged"


class IdentityKind(str, Enum):
    wechat_openid = "wechat_openid"
    wechat_unionid = "wechat_unionid"
    phone = "phone"
    alipay_user_id = "alipay_user_id"


class Member(Table, tablename="member"):
    nickname = Varchar(length=64, default="")
    avatar_url = Varchar(length=500, default="")
    status = Varchar(length=16, choices=MemberStatus, default=MemberStatus.active)
    enrolled_store = ForeignKey(Store, null=True, on_delete=OnDelete.restrict)
    enrolled_via = Varchar(length=16, choices=EnrolmentChannel)
    merged_into = ForeignKey("self", null=True, on_delete=OnDelete.no_action)
    created_at = Timestamptz(default=TimestamptzNow(), index=True)  # the store report counts a day's new members
    # Kept by `membership.tiers` in the transaction of every payment and refund: the fen paid less refunds, and
    # the rung of the tier ladder it reaches ("" while HQ has set no ladder).
    growth_fen = BigInt(default=0)
    tier_code = Varchar(length=32, default="", index=True)


class MemberIdentity(Table, tablename="member_identity"):
    """How the outside world names a member; each name belongs to exactly one member."""

    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)  # a member's names, by member
    kind = Varchar(length=32, choices=IdentityKind)
    value = Varchar(length=128)
    created_at = Timestamptz(default=TimestamptzNow())

    one_member_per_identity = Unique([kind, value])


class MemberMerge(Table, tablename="member_merge"):
    """Audit of a merge: who survived, who was folded in, why, by whom, and what moved."""

    survivor = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, index=True)
    merged = ForeignKey(Member, null=False, unique=True, on_delete=OnDelete.restrict)
    reason = Varchar(length=16, choices=MergeReason)
    staff = ForeignKey(Staff, null=True, on_delete=OnDelete.restrict)
    identities_moved = Integer(default=0)
    points_moved = BigInt(default=0)
    debt_moved = BigInt(default=0)
    lots_moved = Integer(default=0)
    orders_moved = Integer(default=0)
    seats_moved = Integer(default=0)  # group-buy orders
    created_at = Timestamptz(default=TimestamptzNow())
