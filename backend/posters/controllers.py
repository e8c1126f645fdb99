from typing import Annotated, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from backend.core import metrics, openapi
from backend.core.auth import caller
from backend.core.errors import KVUnavailable
from backend.core.images import IMMUTABLE, UPLOAD_MEDIA_TYPES, is_digest, read_upload
from backend.core.paging import query_id
from backend.core.ratelimit import hit_window
from backend.members.auth import CurrentMember, provide_current_member
from backend.posters import service
from backend.posters.errors import AvatarNotFound, PosterLimited
from backend.referrals.errors import OneTarget
from backend.services import Services

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


class PosterController(Controller):
    path = "/api/v1/me"
    tags = ["Referrals"]
    dependencies = {"member": caller(provide_current_member)}

    @get(
        "/posters",
        operation_id="GetMyPoster",
        media_type="image/png",
        operation_class=openapi.operation_with(answers=("image/jpeg",)),
        responses=openapi.errors(404),
    )
    async def poster(
        self,
        request: Request,
        services: NamedDependency[Services],
        member: NamedDependency[CurrentMember],
        campaign_id: Annotated[int | None, query_id("campaignId")] = None,
        group_id: Annotated[int | None, query_id("groupId")] = None,
        format_: Annotated[Literal["png", "jpeg"], QueryParameter(name="format")] = "png",
    ) -> Response[bytes]:
        """My share poster.

        The member's share poster for a referral campaign or a group (750x1334); its QR code opens the
        member's share link. Served from a cache keyed by everything that changes its pixels, with an ETag."""
        if (campaign_id is None) == (group_id is None):
            raise OneTarget(details={"campaignId": "or groupId, exactly one"})
        try:
            limit = services.settings.poster_limit_per_minute
            wait = await hit_window(services.kv, f"mall:posters:rate:{member.id}", limit=limit, window=60)
        except KVUnavailable:  # fails open: the limit spares the CPU; a poster without it is still one member's
            wait = None
        if wait is not None:
            raise PosterLimited(retry_after=wait, member_id=member.id)
        plan = await service.plan(
            member.id,
            campaign_id=campaign_id,
            group_id=group_id,
            base_url=services.settings.share_base_url,
            image_format=format_,
            cache=services.posters,
        )
        etag = f'"{plan.key}"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}  # revalidated each time: 304 is cheap
        if etag in request.headers.get("if-none-match", ""):
            metrics.POSTER_CACHE.labels("not_modified").inc()
            return Response(b"", status_code=304, headers=headers, media_type=MEDIA_TYPES[format_])
        data, source = await services.posters.get_or_draw(plan.key, lambda: service.draw(plan, format_))
        metrics.POSTER_CACHE.labels(source).inc()
        return Response(data, media_type=MEDIA_TYPES[format_], headers=headers)

    @post(
        "/avatar",
        operation_id="UploadMyAvatar",
        status_code=200,
        operation_class=openapi.operation_with(body=(*UPLOAD_MEDIA_TYPES, "multipart/form-data")),
        responses=openapi.errors(415),
    )
    async def upload_avatar(
        self, request: Request, services: NamedDependency[Services], member: NamedDependency[CurrentMember]
    ) -> dict[str, str]:
        """Upload an avatar.

        A JPEG, PNG or WebP, as the request body or as the `file` field of a multipart form (what
        wx.uploadFile sends). Checked and re-encoded to a square JPEG; the upload itself is not kept."""
        data = await read_upload(request)
        url = await service.set_avatar(member.id, data, max_bytes=services.settings.avatar_max_bytes)
        services.posters.forget_member(member.id)  # the next poster shows the new face at once
        return {"avatarUrl": url}


class AvatarController(Controller):
    path = "/api/v1/avatars"
    tags = ["Referrals"]

    @get("/{name:str}", operation_id="GetAvatar", media_type="image/jpeg")
    async def avatar(self, name: FromPath[str]) -> Response[bytes]:
        """An avatar image.

        An avatar by the digest of its bytes: public, and never changes."""
        digest = name.removesuffix(".jpg")
        if not is_digest(digest):
            raise AvatarNotFound()
        return Response(await service.avatar_image(digest), media_type="image/jpeg", headers=IMMUTABLE)
