from datetime import datetime
from typing import Annotated

import msgspec

from backend.core.paging import Id
from backend.core.schema import Struct
from backend.members.tables import EnrolmentChannel

TagName = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
TierCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,32}$")]
Days = Annotated[int, msgspec.Meta(ge=1, le=3650)]  # ten years back at most
SpendFen = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


class TagCreate(Struct):
    name: TagName
    group: TagName | None = None


class TagOut(Struct):
    id: int
    name: str
    group: str | None
    created_at: datetime


class TagsOut(Struct):
    items: list[TagOut]


class MemberTagsAdd(Struct):
    tag_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=50)]


class MemberTagsOut(Struct):
    member_id: int
    items: list[TagOut]


class SegmentRules(Struct, omit_defaults=True):
    """Who is in a segment: every rule given holds (AND); a rule left out does not narrow it."""

    tag_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=100)] | None = None  # any of them
    tier_codes: Annotated[list[TierCode], msgspec.Meta(min_length=1, max_length=20)] | None = None
    store_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=1000)] | None = None  # enrolled at one
    enrolled_via: Annotated[list[EnrolmentChannel], msgspec.Meta(min_length=1)] | EnrolmentChannel | None = None
    min_spend_fen: SpendFen | None = None
    max_spend_fen: SpendFen | None = None
    spend_window_days: Days | None = None
    last_paid_within_days: Days | None = None
    last_paid_before_days: Days | None = None
    min_orders: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None

    @property
    def channels(self) -> list[EnrolmentChannel] | None:
        """`enrolledVia` as a list: one channel may be sent alone."""
        if self.enrolled_via is None or isinstance(self.enrolled_via, list):
            return self.enrolled_via
        return [self.enrolled_via]


class SegmentCreate(Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    rules: SegmentRules


class SegmentOut(Struct):
    id: int
    name: str
    rules: SegmentRules
    created_at: datetime
    created_by_id: int | None


class SegmentsPage(Struct):
    items: list[SegmentOut]
    next_cursor: str | None


class SegmentMemberOut(Struct):
    member_id: int
    nickname: str
    phone_masked: str | None
    enrolled_store_id: int | None
    enrolled_via: EnrolmentChannel
    created_at: datetime


class SegmentMembersPage(Struct):
    """`count`: every member matching now; `items`: a page of them, newest member first."""

    count: int
    items: list[SegmentMemberOut]
    next_cursor: str | None


# Tiers and the member's standing ------------------------------------------------------------------------

Growth = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
Multiplier = Annotated[int, msgspec.Meta(ge=100, le=1000)]  # percent: 150 earns half as many points again


class TierIn(Struct):
    code: TierCode
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    min_growth: Growth
    points_multiplier_percent: Multiplier = 100
    discount_percent: Annotated[int, msgspec.Meta(ge=0, le=50)] = 0  # off a till or store-code payment


class LadderIn(Struct):
    tiers: Annotated[list[TierIn], msgspec.Meta(max_length=20)]


class TierOut(Struct):
    code: str
    name: str
    min_growth: int
    points_multiplier_percent: int
    discount_percent: int


class LadderOut(Struct):
    tiers: list[TierOut]
    members_retiered: int


class MemberTierOut(Struct):
    code: str
    name: str
    growth: int
    next_tier_growth: int | None  # the growth the next tier starts at; None at the top
    points_multiplier_percent: int
    discount_percent: int


class PaidOut(Struct):
    plan_id: int
    active_until: datetime
    started_at: datetime


class MembershipOut(Struct):
    tier: MemberTierOut | None  # None while HQ has set no ladder
    growth: int
    paid: PaidOut | None
