from typing import Any

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from backend.core.auth import PrincipalKind, TokenIssuer
from backend.members import service
from backend.members.auth import CurrentMember, provide_current_member
from backend.members.schemas import MemberOut, MiniProgramLogin, MiniProgramLoginOut
from backend.members.tables import EnrolmentChannel
from backend.members.wechat import LoginCodeExchanger


def member_out(profile: dict[str, Any]) -> MemberOut:
    return MemberOut(
        id=profile["id"], nickname=profile["nickname"], avatar_url=profile["avatar_url"],
        phone_masked=profile["phone_masked"], points_balance=profile["points_balance"],
        enrolled_store_id=profile["enrolled_store"], enrolled_via=profile["enrolled_via"],
        created_at=profile["created_at"],
    )


class MiniProgramAuthController(Controller):
    path = "/api/v1/auth/miniprogram"
    tags = ["Auth"]

    @post("/login", operation_id="MiniProgramLogin", status_code=200)
    async def login(
        self,
        data: JSONBody[MiniProgramLogin],
        wechat_login: NamedDependency[LoginCodeExchanger],
        tokens: NamedDependency[TokenIssuer],
    ) -> MiniProgramLoginOut:
        session = await wechat_login.exchange(data.code)
        member_id, is_new = await service.find_or_enrol_wechat_member(session, channel=EnrolmentChannel.miniprogram)
        return MiniProgramLoginOut(
            access_token=tokens.issue(PrincipalKind.member, member_id),
            expires_in=tokens.ttl(PrincipalKind.member),
            member=member_out(await service.member_profile(member_id)),
            is_new=is_new,
        )


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["Shopper"]
    dependencies = {"member": Provide(provide_current_member)}

    @get(operation_id="GetMe")
    async def get_me(self, member: NamedDependency[CurrentMember]) -> MemberOut:
        return member_out(await service.member_profile(member.id))
