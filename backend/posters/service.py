"""Posters for a member's share link, drawn off the event loop and served from a cache keyed by their
pixels' inputs; avatars a member uploads, checked and re-encoded before anything is kept."""

import asyncio
import functools
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image, ImageOps

from backend.core.clock import utcnow
from backend.core.db import Prepared, write_transaction
from backend.core.images import decode_upload, digest_of, is_digest, jpeg
from backend.core.recent import Recent
from backend.groupbuy.tables import Group
from backend.members.tables import Member
from backend.posters.errors import AvatarNotFound
from backend.posters.render import FONTS, PosterInput, render
from backend.posters.tables import MemberAvatar
from backend.posters.templates import Template, load_templates
from backend.referrals import service as referrals
from backend.settings import PROJECT_ROOT

PRODUCT_DIR = PROJECT_ROOT / "assets" / "products"
SHOWN_IN = ZoneInfo("Asia/Shanghai")  # dates on a poster are the shopper's
AVATAR_SIDE = 256
AVATAR_PATH = "/api/v1/avatars/"
FONTS_DIGEST = hashlib.sha256(
    b"".join(path.name.encode() + str(path.stat().st_size).encode() for path in FONTS)
).hexdigest()[:16]

_renderers = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="poster")


@dataclass(frozen=True)
class PosterPlan:
    """What a poster shows, known before drawing it: its cache key, and how to get the few bytes it needs."""

    key: str
    template: Template
    fields: tuple[tuple[str, str], ...]
    url: str
    avatar_digest: str | None
    product_path: str  # under assets/products, "" for none


class PosterCache:
    """The most recently served posters, by key, within a byte budget, and the recent plans; one per app.

    A poster asked for again while it is being planned or drawn waits for that plan or drawing instead of
    starting its own: a burst for one poster (a share sheet opened, a worker that has not drawn it yet)
    costs one drawing, not one per request."""

    def __init__(self, *, plan_seconds: float = 2.0, max_bytes: int = 128 * 1024 * 1024) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes, self._max = 0, max_bytes
        self._drawing: dict[str, asyncio.Future[bytes]] = {}
        self.plans: Recent[tuple[int, int | None, int | None, str, str], PosterPlan] = Recent(
            plan_seconds, size=50_000, coalesce=True
        )

    def forget_member(self, member_id: int) -> None:
        self.plans.forget_if(lambda key: key[0] == member_id)

    def get(self, key: str) -> bytes | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    async def get_or_draw(self, key: str, draw: Callable[[], Awaitable[bytes]]) -> tuple[bytes, str]:
        """The poster's bytes, and where they came from: `hit` (the cache), `miss` (drawn for this request) or
        `joined` (a drawing already under way for `key`, waited for).

        The drawing runs as a task of its own: a request that gives up waiting (its client went away) leaves
        it to finish for the others and the cache."""
        data = self.get(key)
        if data is not None:
            return data, "hit"
        drawing, source = self._drawing.get(key), "joined"
        if drawing is None:
            drawing, source = asyncio.ensure_future(draw()), "miss"
            self._drawing[key] = drawing
            drawing.add_done_callback(functools.partial(self._drawn, key))
        return await asyncio.shield(drawing), source

    def _drawn(self, key: str, drawing: asyncio.Future[bytes]) -> None:
        del self._drawing[key]
        if not drawing.cancelled() and drawing.exception() is None:
            self.put(key, drawing.result())

    def put(self, key: str, data: bytes) -> None:
        if key in self._items or len(data) > self._max:
            return
        self._items[key] = data
        self._bytes += len(data)
        while self._bytes > self._max:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= len(dropped)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _shown(moment: datetime, *, with_time: bool) -> str:
    local = moment.astimezone(SHOWN_IN)
    return f"{local.month}月{local.day}日" + (f" {local:%H:%M}" if with_time else "")


_product_digests: dict[str, tuple[float, str]] = {}


def _product(path: str) -> tuple[str, bytes | None]:
    """A bundled product image (never a URL): its digest, and its bytes when it exists."""
    if not path:
        return "", None
    file = (PRODUCT_DIR / path).resolve()
    if not file.is_relative_to(PRODUCT_DIR.resolve()) or not file.is_file():
        return "missing", None
    data = file.read_bytes()
    return hashlib.sha256(data).hexdigest()[:16], data


def _product_digest(path: str) -> str:
    if not path:
        return ""
    file = PRODUCT_DIR / path
    try:
        mtime = file.stat().st_mtime
    except OSError:
        return "missing"
    cached = _product_digests.get(path)
    if cached is None or cached[0] != mtime:
        cached = (mtime, _product(path)[0])
        _product_digests[path] = cached
    return cached[1]


_NICKNAME = Prepared(lambda member_id: Member.select(Member.nickname).where(Member.id == member_id).first())
_AVATAR = Prepared(
    lambda member_id: MemberAvatar.select(MemberAvatar.digest).where(MemberAvatar.member == member_id).first()
)
_GROUP = Prepared(
    lambda group_id: (
        Group.select(
            Group.group_size,
            Group.seats_taken,
            Group.expires_at,
            Group.campaign.product_name,
            Group.campaign.product_image,
            Group.campaign.price_fen,
            Group.campaign.original_price_fen,
        )
        .where(Group.id == group_id)
        .first()
    )
)


async def plan(
    member_id: int,
    *,
    campaign_id: int | None,
    group_id: int | None,
    base_url: str,
    image_format: str,
    cache: "PosterCache",
) -> PosterPlan:
    """What the poster will show and its key; read from the database at most every `plan_seconds` (the cache's) per
    member, target and format (a member opening the share sheet asks for the same poster several times)."""
    return await cache.plans.read(
        (member_id, campaign_id, group_id, image_format, base_url),
        lambda: _plan(
            member_id, campaign_id=campaign_id, group_id=group_id, base_url=base_url, image_format=image_format
        ),
    )


async def _plan(
    member_id: int, *, campaign_id: int | None, group_id: int | None, base_url: str, image_format: str
) -> PosterPlan:
    link = await referrals.share_link(member_id, campaign_id=campaign_id, group_id=group_id)
    member = await _NICKNAME.run(member_id)
    avatar = await _AVATAR.run(member_id)
    fields: dict[str, Any] = {"nickname": member["nickname"] or "会员"}
    templates = load_templates()
    product = ""
    if campaign_id is not None:
        referral = await referrals.get_campaign(campaign_id)
        template = templates.get(referral.poster_template) or templates["referral"]
        fields.update(
            title=referral.title,
            referrerPoints=referral.referrer_points,
            refereePoints=referral.referee_points,
            endsAt=_shown(referral.ends_at, with_time=False),
        )
    else:
        group = await _GROUP.run(group_id)
        template = templates["groupbuy"]
        product = group["campaign.product_image"]
        fields.update(
            productName=group["campaign.product_name"],
            price=_yuan(group["campaign.price_fen"]),
            originalPrice=_yuan(group["campaign.original_price_fen"]),
            groupSize=group["group_size"],
            seatsLeft=group["group_size"] - group["seats_taken"],
            deadline=_shown(group["expires_at"], with_time=True),
        )
    pairs = tuple(sorted((name, str(value)) for name, value in fields.items()))
    url = base_url + link.scene
    inputs = json.dumps(
        [
            template.name,
            template.version,
            template.digest,
            FONTS_DIGEST,
            pairs,
            url,
            avatar["digest"] if avatar else None,
            _product_digest(product),
            image_format,
        ]
    )
    return PosterPlan(
        key=hashlib.sha256(inputs.encode()).hexdigest()[:32],
        template=template,
        fields=pairs,
        url=url,
        avatar_digest=avatar["digest"] if avatar else None,
        product_path=product,
    )


async def draw(poster: PosterPlan, image_format: str) -> bytes:
    """Render the planned poster on a worker thread: the event loop keeps serving meanwhile."""
    avatar = None
    if poster.avatar_digest is not None:
        row = await MemberAvatar.select(MemberAvatar.image).where(MemberAvatar.digest == poster.avatar_digest).first()
        avatar = bytes(row["image"]) if row else None
    product = _product(poster.product_path)[1]
    job = PosterInput(template=poster.template, fields=poster.fields, url=poster.url, avatar=avatar, product=product)
    return await asyncio.get_running_loop().run_in_executor(_renderers, render, job, image_format)


# Avatars -----------------------------------------------------------------------------------------------


def reencode_avatar(data: bytes, *, max_bytes: int) -> bytes:
    """A square JPEG of the upload, or an error; the upload itself is never kept or served."""
    square = ImageOps.fit(
        decode_upload(data, max_bytes=max_bytes), (AVATAR_SIDE, AVATAR_SIDE), Image.Resampling.LANCZOS
    )
    return jpeg(square)


async def set_avatar(member_id: int, data: bytes, *, max_bytes: int) -> str:
    """Check and re-encode the upload, then keep it as the member's avatar; answers its URL."""
    image = await asyncio.get_running_loop().run_in_executor(
        _renderers, functools.partial(reencode_avatar, data, max_bytes=max_bytes)
    )
    digest = digest_of(image)
    url = f"{AVATAR_PATH}{digest}.jpg"
    now = utcnow()
    async with write_transaction():
        await MemberAvatar.delete().where(MemberAvatar.member == member_id)
        await MemberAvatar.insert(MemberAvatar(member=member_id, digest=digest, image=image, created_at=now))
        await Member.update({Member.avatar_url: url}).where(Member.id == member_id)
    return url


async def avatar_image(digest: str) -> bytes:
    row = await MemberAvatar.select(MemberAvatar.image).where(MemberAvatar.digest == digest).first()
    if row is None:
        raise AvatarNotFound()
    return bytes(row["image"])


async def is_avatar_of(member_id: int, url: str) -> bool:
    """Whether `url` is an avatar this server gave out to this member (what their profile may show)."""
    name = url.removeprefix(AVATAR_PATH)
    digest = name.removesuffix(".jpg")
    if name == url or not is_digest(digest):
        return False
    return await MemberAvatar.exists().where((MemberAvatar.member == member_id) & (MemberAvatar.digest == digest))
