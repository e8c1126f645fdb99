from datetime import datetime
from typing import Annotated

import msgspec

from backend.core.paging import Id
from backend.core.schema import Struct
from backend.members.tables import EnrolmentChannel


class MiniProgramLogin(Struct):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    scene: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")] | None = None


class TierBrief(Struct):
    code: str
    name: str
    growth: int
    next_tier_growth: int | None


class MemberOut(Struct):
    id: int
    nickname: str
    avatar_url: str
    phone_masked: str | None
    points_balance: int
    enrolled_store_id: int | None
    enrolled_via: EnrolmentChannel
    created_at: datetime
    tier: TierBrief | None = None  # None while HQ has set no ladder
    paid_member_until: datetime | None = None  # the paid membership's end, while it is active


class MiniProgramLoginOut(Struct):
    access_token: str
    expires_in: int
    member: MemberOut
    is_new: bool


class MemberCodeOut(Struct):
    code: str
    expires_in_seconds: int


class MemberLookup(Struct):
    member_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{18}$")]
    till_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,32}$")] | None = None
    # The store the till checks out for; a cashier of one store may leave it out.
    store_id: Id | None = None


class MemberLookupOut(Struct):
    member_id: int
    nickname: str
    phone_masked: str | None
    points_balance: int


class PhoneBind(Struct):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


class MemberAfterPhoneOut(MemberOut):
    access_token: str | None = None  # set when the caller was merged into an older member: use this one now


class MemberMergeRequest(Struct):
    survivor_id: Id
    merged_id: Id


class MemberUpdate(Struct):
    nickname: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | msgspec.UnsetType = msgspec.UNSET
    avatar_url: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | msgspec.UnsetType = msgspec.UNSET
