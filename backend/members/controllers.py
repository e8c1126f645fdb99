import time

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody

from backend.core import openapi
from backend.core.auth import PrincipalKind, caller
from backend.core.clock import utcnow
from backend.core.ratelimit import client_address
from backend.members import service
from backend.members.auth import CurrentMember, provide_current_member
from backend.members.schemas import (
    MemberAfterPhoneOut,
    MemberCodeOut,
    MemberLookup,
    MemberLookupOut,
    MemberMergeRequest,
    MemberOut,
    MemberUpdate,
    MiniProgramLogin,
    MiniProgramLoginOut,
    PhoneBind,
    TierBrief,
)
from backend.members.service import MemberProfile
from backend.members.tables import EnrolmentChannel, MergeReason
from backend.membership import standing
from backend.membership.standing import Standing
from backend.points import service as points
from backend.posters import service as posters
from backend.referrals import service as referrals
from backend.services import Services
from backend.stores.auth import CurrentStaff, provide_current_staff, provide_hq_admin


async def member_out(member_id: int) -> MemberOut:
    profile = await service.member_profile(member_id)
    balance, _ = await points.balance_of(member_id)
    return _out(profile, balance, await standing.standing(member_id, utcnow()))


def _out(profile: MemberProfile, balance: int, held: Standing) -> MemberOut:
    tier = None
    if held.tier is not None:
        tier = TierBrief(
            code=held.tier.code,
            name=held.tier.name,
            growth=held.growth_fen,
            next_tier_growth=held.next_tier.min_growth if held.next_tier is not None else None,
        )
    return MemberOut(
        id=profile.id,
        nickname=profile.nickname,
        avatar_url=profile.avatar_url,
        phone_masked=profile.phone_masked,
        points_balance=balance,
        enrolled_store_id=profile.enrolled_store_id,
        enrolled_via=profile.enrolled_via,
        created_at=profile.created_at,
        tier=tier,
        paid_member_until=held.paid.active_until if held.paid is not None else None,
    )


class MiniProgramAuthController(Controller):
    path = "/api/v1/auth/miniprogram"
    tags = ["Auth"]

    @post("/login", operation_id="MiniProgramLogin", status_code=200, responses=openapi.errors(401, 502))
    async def login(
        self,
        services: NamedDependency[Services],
        data: JSONBody[MiniProgramLogin],
    ) -> MiniProgramLoginOut:
        """Mini-program sign-in.

        The mini-program's wx.login code is exchanged with WeChat (code2session); answers a member token
        (memberBearer) and the member, enrolled on first login. A share link's `scene` attributes a referral.
        """
        session = await services.wechat_login.exchange(data.code)
        shared = data.scene is not None and await referrals.scene_exists(data.scene)
        member_id, is_new = await service.find_or_enrol_wechat_member(
            session, channel=EnrolmentChannel.referral if shared else EnrolmentChannel.miniprogram
        )
        if shared:  # a scene that binds nobody (the rules say no) still lets the shopper in
            await referrals.attribute(member_id, data.scene, is_new=is_new)
        return MiniProgramLoginOut(
            access_token=services.tokens.issue(PrincipalKind.member, member_id),
            expires_in=services.tokens.ttl(PrincipalKind.member),
            member=await member_out(member_id),
            is_new=is_new,
        )


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["Shopper"]
    dependencies = {"member": caller(provide_current_member)}

    @get(operation_id="GetMe")
    async def get_me(self, member: NamedDependency[CurrentMember]) -> MemberOut:
        """The signed-in member.

        The signed-in member: nickname, avatar, masked phone, points balance and where they enrolled."""
        return await member_out(member.id)

    @patch(operation_id="UpdateMe")
    async def update_me(
        self, services: NamedDependency[Services], member: NamedDependency[CurrentMember], data: JSONBody[MemberUpdate]
    ) -> MemberOut:
        """Update nickname and avatar.

        What the shopper typed in WeChat's avatar-and-nickname form: a nickname of 1-20 characters, and an
        avatar uploaded to this server first (`POST /api/v1/me/avatar` answers its `avatarUrl`)."""
        nickname = data.nickname.strip() if isinstance(data.nickname, str) else None
        avatar_url = data.avatar_url if isinstance(data.avatar_url, str) else None
        if nickname is not None:
            service.check_nickname(nickname)
        owned = avatar_url is not None and await posters.is_avatar_of(member.id, avatar_url)
        await service.update_profile(member.id, nickname=nickname, avatar_url=avatar_url, avatar_owned=owned)
        services.posters.forget_member(member.id)  # the next poster shows the new name and face at once
        return await member_out(member.id)

    @post("/phone", operation_id="BindMyPhone", status_code=200, responses=openapi.errors(502))
    async def bind_phone(
        self,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        data: JSONBody[PhoneBind],
    ) -> MemberAfterPhoneOut:
        """Bind the phone number.

        Binds the phone number from WeChat's phone code. When another member already holds that number the two
        are merged and the older one survives (points, orders and referrals follow); the answer then carries a
        new token for the survivor, which may not be the caller.
        """
        phone = await services.phone_numbers.phone_number(data.code)
        holder = await service.bind_phone(member.id, phone, app_id=services.settings.wechat_app_id)
        token = services.tokens.issue(PrincipalKind.member, holder) if holder != member.id else None
        return MemberAfterPhoneOut(**msgspec.structs.asdict(await member_out(holder)), access_token=token)

    @get("/member-code", operation_id="GetMyMemberCode", cache_control=CacheControlHeader(no_store=True))
    async def member_code(
        self, services: NamedDependency[Services], member: NamedDependency[CurrentMember]
    ) -> MemberCodeOut:
        """Member code for the till.

        The rotating member code the till scans (valid `expiresInSeconds`); it identifies the member for one
        checkout at one till.
        """
        code, seconds_left = services.member_codes.code_for(member.id, now=time.time())
        return MemberCodeOut(code=code, expires_in_seconds=seconds_left)


class CashierMemberController(Controller):
    path = "/api/v1/cashier"
    tags = ["Cashier"]
    dependencies = {"staff": caller(provide_current_staff)}

    @post("/member-lookups", operation_id="LookUpMemberCode", status_code=200, responses=openapi.errors(404))
    async def look_up(
        self,
        services: NamedDependency[Services],
        request: Request,
        staff: NamedDependency[CurrentStaff],
        data: JSONBody[MemberLookup],
    ) -> MemberLookupOut:
        """Look up a scanned member code.

        The member behind a scanned member code. The code is then good for one checkout at this till (this
        staff member, this store, this till) for the next two minutes; every other till refuses it."""
        if data.store_id is not None:
            staff.ensure_store(data.store_id)
        store_id = data.store_id
        if store_id is None and len(staff.store_ids) == 1 and not staff.is_hq:
            (store_id,) = staff.store_ids
        member_id = await service.look_up_member_code(
            data.member_code,
            codes=services.member_codes,
            kv=services.kv,
            till=service.Till(staff.id, store_id, data.till_id or client_address(request.scope)),
            now=time.time(),
            failure_limit=services.settings.member_lookup_failure_limit,
            window=services.settings.member_lookup_failure_window_seconds,
        )
        profile = await service.member_profile(member_id)
        balance, _ = await points.balance_of(member_id)
        return MemberLookupOut(
            member_id=profile.id,
            nickname=profile.nickname,
            phone_masked=profile.phone_masked,
            points_balance=balance,
        )


class AdminMemberController(Controller):
    path = "/api/v1/admin/members"
    tags = ["HQ"]
    dependencies = {"staff": caller(provide_hq_admin)}

    @post("/merge", operation_id="MergeMembers", status_code=200, responses=openapi.errors(404))
    async def merge(self, staff: NamedDependency[CurrentStaff], data: JSONBody[MemberMergeRequest]) -> MemberOut:
        """Merge two members.

        HQ merges one member into another: identities, points, orders, referrals and seats move to the survivor."""
        survivor = await service.merge_members(
            data.survivor_id, data.merged_id, reason=MergeReason.hq, staff_id=staff.id
        )
        return await member_out(survivor)
