from datetime import datetime
from typing import Annotated

import msgspec

from backend.core.idempotency import IdempotencyKey
from backend.core.paging import Id
from backend.core.schema import Struct
from backend.coupons.tables import CouponChannel, CouponKind, CouponTrigger, IssueStatus, RewardTo
from backend.membership.schemas import TierCode

MAX_FACE_FEN = 100_000_000  # 100万元: past it is a typo
Fen = Annotated[int, msgspec.Meta(ge=1, le=MAX_FACE_FEN)]
SpendFen = Annotated[int, msgspec.Meta(ge=0, le=10 * MAX_FACE_FEN)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]


class CouponTemplateCreate(Struct):
    """Fixed (`valueFen`) or percent off (`percentOff`, capped by `maxDiscountFen`); valid `validDays` from issue
    or from `validFrom` to `validUntil`."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
    kind: CouponKind
    channels: Annotated[list[CouponChannel], msgspec.Meta(min_length=1, max_length=4)]
    min_spend_fen: SpendFen = 0
    value_fen: Fen | None = None
    percent_off: Annotated[int, msgspec.Meta(ge=1, le=99)] | None = None
    max_discount_fen: Fen | None = None
    store_ids: Annotated[list[Id], msgspec.Meta(max_length=1000)] | None = None
    product_ids: Annotated[list[Id], msgspec.Meta(max_length=1000)] | None = None
    valid_days: Annotated[int, msgspec.Meta(ge=1, le=3660)] | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    per_member_limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    total_limit: Limit | None = None


class CouponTemplateOut(Struct):
    id: int
    title: str
    kind: CouponKind
    value_fen: int | None
    percent_off: int | None
    max_discount_fen: int | None
    min_spend_fen: int
    channels: list[CouponChannel]
    store_ids: list[int]
    product_ids: list[int]
    valid_days: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    per_member_limit: int
    total_limit: int | None
    issued_count: int
    created_at: datetime


class CouponTemplatesPage(Struct):
    items: list[CouponTemplateOut]
    next_cursor: str | None


class SpendBand(Struct):
    min_spend_fen: SpendFen
    value_fen: Fen


class SegmentBand(Struct):
    segment_id: Id
    value_fen: Fen


class TierBand(Struct):
    tier_code: TierCode
    value_fen: Fen


class ValueRule(Struct):
    """千人千券: each member's face value. `by: spend`: the band with the highest `minSpendFen` the member's spend in
    the last `windowDays` reaches; `by: segment`: the first band whose segment holds the member; `by: tier`: the band
    of the tier the member holds when the coupon is issued. A member no band gives a value gets `defaultValueFen`, or
    no coupon when it is unset."""

    by: Annotated[str, msgspec.Meta(pattern="^(spend|segment|tier)$")]
    spend_bands: Annotated[list[SpendBand], msgspec.Meta(max_length=20)] | None = None
    segment_bands: Annotated[list[SegmentBand], msgspec.Meta(max_length=20)] | None = None
    tier_bands: Annotated[list[TierBand], msgspec.Meta(max_length=20)] | None = None
    window_days: Annotated[int, msgspec.Meta(ge=1, le=3660)] = 90
    default_value_fen: Fen | None = None


class CouponCampaignCreate(Struct):
    template_id: Id
    trigger: CouponTrigger
    starts_at: datetime
    ends_at: datetime
    segment_id: Id | None = None
    value_rule: ValueRule | None = None
    budget_fen: Annotated[int, msgspec.Meta(ge=1, le=10**12)] | None = None
    reward_to: RewardTo | None = None  # referral_reward: who gets it (default both)


class CouponCampaignPatch(Struct):
    """What HQ changes on a running campaign: its end, its budget (null: none), or `closed: true` to end it now."""

    ends_at: datetime | msgspec.UnsetType = msgspec.UNSET
    budget_fen: Annotated[int, msgspec.Meta(ge=1, le=10**12)] | None | msgspec.UnsetType = msgspec.UNSET
    closed: bool | msgspec.UnsetType = msgspec.UNSET


class CouponCampaignOut(Struct):
    id: int
    template_id: int
    trigger: CouponTrigger
    segment_id: int | None
    value_rule: ValueRule | None
    reward_to: RewardTo | None
    budget_fen: int | None
    budget_used_fen: int
    budget_left_fen: int | None
    issued_count: int
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    closed_at: datetime | None = None  # closed early by HQ (its end moved to then)


class CouponCampaignsPage(Struct):
    items: list[CouponCampaignOut]
    next_cursor: str | None


class ClaimableCouponOut(Struct):
    id: int
    title: str
    kind: CouponKind
    value_fen: int | None
    percent_off: int | None
    max_discount_fen: int | None
    min_spend_fen: int
    channels: list[CouponChannel]
    ends_at: datetime


class ClaimableCoupons(Struct):
    items: list[ClaimableCouponOut]


class CouponIssueCreate(Struct):
    idempotency_key: IdempotencyKey


class CouponIssueOut(Struct):
    id: int
    campaign_id: int
    status: IssueStatus
    issued: int
    skipped: int
    issued_fen: int
    budget_left_fen: int | None


class CouponOut(Struct):
    id: int
    title: str
    kind: CouponKind
    value_fen: int | None
    percent_off: int | None
    max_discount_fen: int | None
    min_spend_fen: int
    channels: list[CouponChannel]
    store_ids: list[int]
    product_ids: list[int]
    valid_from: datetime
    valid_until: datetime
    status: str  # usable | used | expired
    campaign_id: int | None
    order_id: int | None
    used_at: datetime | None


class CouponsPage(Struct):
    items: list[CouponOut]
    next_cursor: str | None
