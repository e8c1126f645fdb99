"""Members and the identities that name them."""

import logging
from typing import Any

from backend.core.db import is_unique_violation, write_transaction
from backend.core.kv import KV
from backend.core.ratelimit import release_attempt, reserve_attempt
from backend.members.code import STEP_SECONDS, MemberCodes
from backend.members.errors import MemberCodeNotRecognised, MemberCodeUsed, TooManyLookups
from backend.members.tables import EnrolmentChannel, IdentityKind, Member, MemberIdentity, MemberStatus
from backend.members.wechat import WeChatSession
from backend.points import service as points

logger = logging.getLogger(__name__)

ENROL_ATTEMPTS = 3


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"


async def member_by_identity(kind: IdentityKind, value: str) -> int | None:
    row = await MemberIdentity.select(MemberIdentity.member).where(
        (MemberIdentity.kind == kind) & (MemberIdentity.value == value)
    ).first()
    return row["member"] if row else None


async def _attach_identity(member_id: int, kind: IdentityKind, value: str) -> None:
    """Record another name of a member; a name another member already holds is left where it is."""
    try:
        async with write_transaction():
            await MemberIdentity.insert(MemberIdentity(member=member_id, kind=kind, value=value))
    except Exception as error:
        if not is_unique_violation(error):
            raise
        logger.info("identity held by another member", extra={"member_id": member_id, "kind": kind.value})


async def find_or_enrol_wechat_member(
    session: WeChatSession, *, channel: EnrolmentChannel, store_id: int | None = None
) -> tuple[int, bool]:
    """The member this WeChat user is, enrolling them on first sight; answers (member_id, is_new)."""
    names = [(IdentityKind.wechat_openid, session.openid)]
    if session.unionid:
        names.append((IdentityKind.wechat_unionid, session.unionid))
    for _ in range(ENROL_ATTEMPTS):
        held = {kind: await member_by_identity(kind, value) for kind, value in names}
        member_id = held[IdentityKind.wechat_openid] or held.get(IdentityKind.wechat_unionid)
        if member_id is not None:
            for kind, value in names:
                if held[kind] is None:
                    await _attach_identity(member_id, kind, value)
            return member_id, False
        try:
            async with write_transaction():
                rows = await Member.insert(Member(enrolled_via=channel, enrolled_store=store_id))
                member_id = rows[0]["id"]
                await MemberIdentity.insert(*(MemberIdentity(member=member_id, kind=kind, value=value)
                                              for kind, value in names))
        except Exception as error:
            if not is_unique_violation(error):
                raise
            continue  # enrolled by a concurrent request a moment ago: read it back
        logger.info("member enrolled", extra={"member_id": member_id, "channel": channel.value})
        return member_id, True
    raise RuntimeError("enrolment kept racing with concurrent requests")


async def is_active_member(member_id: int) -> bool:
    return await Member.exists().where((Member.id == member_id) & (Member.status == MemberStatus.active))


async def member_profile(member_id: int) -> dict[str, Any]:
    member = await Member.select().where(Member.id == member_id).first()
    phone = await MemberIdentity.select(MemberIdentity.value).where(
        (MemberIdentity.member == member_id) & (MemberIdentity.kind == IdentityKind.phone)
    ).first()
    balance, _ = await points.balance_of(member_id)
    return {**member, "phone_masked": mask_phone(phone["value"]) if phone else None, "points_balance": balance}


async def look_up_member_code(code: str, *, codes: MemberCodes, kv: KV, staff_id: int, till: str, now: float,
                              failure_limit: int, window: int) -> dict[str, Any]:
    """The member a till scanned, each code accepted once; unrecognised codes are limited per staff and till."""
    counters = ((f"mall:members:lookup_fail:staff:{staff_id}", failure_limit),
                (f"mall:members:lookup_fail:till:{till}", failure_limit))
    retry_after = await reserve_attempt(kv, counters, window=window)
    if retry_after is not None:
        raise TooManyLookups(retry_after=retry_after, staff_id=staff_id)
    member_id = codes.member_of(code)
    step = codes.matching_step(code, member_id, now=now) if member_id else None
    if step is None or not await is_active_member(member_id):
        raise MemberCodeNotRecognised(staff_id=staff_id)
    # Two steps of validity: the guard outlives both.
    if not await kv.set_if_absent(f"mall:members:code_used:{member_id}:{step}", b"1", expires_in=3 * STEP_SECONDS):
        raise MemberCodeUsed(member_id=member_id)
    await release_attempt(kv, counters)
    logger.info("member code accepted", extra={"member_id": member_id, "staff_id": staff_id})
    return await member_profile(member_id)
