"""Posters: every shipped template's QR decodes (zbar) in PNG and JPEG; Chinese is drawn; uploads are safe."""

import asyncio
import io
import struct
import zlib

import pytest
from PIL import Image, ImageChops, ImageDraw
from pyzbar import pyzbar

from backend.members.tables import Member
from backend.posters import render
from backend.posters.tables import MemberAvatar
from backend.posters.templates import TemplateError, load_templates, parse
from tests.conftest import Ticker, member_login
from tests.groupbuy.test_seats import new_campaign as new_groupbuy_campaign
from tests.groupbuy.test_seats import open_group
from tests.referrals.test_referrals import new_campaign, share


def decode(data: bytes) -> list[str]:
    return [symbol.data.decode() for symbol in pyzbar.decode(Image.open(io.BytesIO(data)))]


async def poster(client, member, fmt: str, **target):
    params = {"format": fmt} | {key: str(value) for key, value in target.items()}
    return await client.get("/api/v1/me/posters", headers=member["headers"], params=params)


async def test_every_template_renders_a_qr_that_decodes_to_the_share_url(client, demo):
    referral = await new_campaign(client)
    sharer = await member_login(client, openid="oPoster00000000000000000001")
    groupbuy = await new_groupbuy_campaign(
        client, demo, productImage="durian.jpg", productName="金枕榴莲 (约 3 kg) 泰国直采 当季新鲜 顺丰冷链到店自提"
    )
    group = (await open_group(client, sharer, groupbuy["id"], demo["S001"])).json()["group"]
    targets = {"referral": {"campaignId": referral["id"]}, "groupbuy": {"groupId": group["id"]}}
    assert set(targets) == set(load_templates())  # every shipped template is checked
    for name, target in targets.items():
        link = await share(client, sharer, **target)
        for fmt, media in (("png", "image/png"), ("jpeg", "image/jpeg")):
            response = await poster(client, sharer, fmt, **target)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == media
            image = Image.open(io.BytesIO(response.content))
            assert (image.format, image.size) == (fmt.upper(), (750, 1334))
            assert decode(response.content) == [link["url"]], (name, fmt)
            etag = response.headers["etag"]
            assert response.headers["cache-control"] == "private, no-cache"  # the app asks again, with the ETag
            again = await poster(client, sharer, fmt, **target)
            assert (again.content, again.headers["etag"]) == (response.content, etag)  # from the cache
            unchanged = await client.get(
                "/api/v1/me/posters",
                headers={**sharer["headers"], "If-None-Match": etag},
                params={"format": fmt, **{k: str(v) for k, v in target.items()}},
            )
            assert unchanged.status_code == 304 and unchanged.content == b""


async def test_what_changes_the_pixels_changes_the_poster(make_client, demo):
    async with make_client(poster_plan_seconds=0) as client:
        await changed_poster(client, demo)


async def changed_poster(client, demo) -> None:
    groupbuy = await new_groupbuy_campaign(client, demo, groupSize=3)
    leader = await member_login(client, openid="oPoster00000000000000000002")
    friend = await member_login(client, openid="oPoster00000000000000000003")
    group = (await open_group(client, leader, groupbuy["id"], demo["S001"])).json()["group"]
    before = await poster(client, leader, "jpeg", groupId=group["id"])
    joined = await client.post(
        f"/api/v1/groupbuy/groups/{group['id']}/orders", headers=friend["headers"], json={"pickupStoreId": demo["S001"]}
    )
    assert joined.status_code == 201
    after = await poster(client, leader, "jpeg", groupId=group["id"])  # one seat fewer left
    assert after.headers["etag"] != before.headers["etag"] and after.content != before.content
    assert decode(after.content) == decode(before.content)  # the same link


def glyph(text: str, font_index: int) -> Image.Image:
    image = Image.new("L", (80, 80), 0)
    ImageDraw.Draw(image).text((10, 10), text, font=render._font(font_index, 48), fill=255)
    return image


def test_chinese_is_drawn_and_what_no_font_has_is_replaced_visibly():
    assert render.drawable("张三丰😀𠀾") == "张三丰😀□"  # the emoji from the second font; the rare character □
    nothing = glyph("\U000f0000", 0)  # a private-use character: the font's empty .notdef
    for template in load_templates().values():
        for layer in template.layers:
            for char in layer.get("text", "") + layer.get("caption", ""):
                if char in "{} " or not char.strip():
                    continue
                index = render.font_for(char)
                assert index is not None, (template.name, char)
                assert ImageChops.difference(glyph(char, index), nothing).getbbox() is not None, char
    assert ImageChops.difference(glyph("□", render.font_for("□")), nothing).getbbox() is not None
    lines = render.wrap("新会员首单立减 拉新有礼 邀请好友一起来拿积分吧 活动多多", 52, 590, 2)
    assert len(lines) == 2 and lines[-1].endswith("…")
    assert render.wrap("Grapefruit grapefruit", 30, 200, 3)[0] == "Grapefruit"  # words stay whole


def test_a_template_a_renderer_cannot_draw_is_refused(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"name": "broken", "version": 1, "kind": "referral", "size": [750, 1334], "layers": '
        '[{"type": "text", "text": "x", "box": [0, 0, 10], "size": 10}]}'
    )
    with pytest.raises(TemplateError, match="box"):
        parse(broken)
    broken.write_text('{"name": "broken", "version": 1, "kind": "referral", "size": [750, 1334], "layers": []}')
    with pytest.raises(TemplateError, match="QR"):
        parse(broken)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims to be width x height: what a decompression bomb looks like from outside."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


async def test_avatars_are_checked_reencoded_and_drawn(make_client, demo):
    async with make_client(avatar_max_bytes=200_000) as client:
        member = await member_login(client, openid="oPoster00000000000000000004")
        headers = member["headers"]
        for body, content_type, status, code in (
            (b"not an image at all", "image/png", 415, "posters.not_an_image"),
            (png_header(20_000, 20_000), "image/png", 413, "posters.image_too_large"),
            (b"\xff" * 300_000, "image/jpeg", 413, "posters.image_too_large"),
            (b"GIF89a" + b"\0" * 40, "image/gif", 415, "posters.not_an_image"),
        ):
            response = await client.post(
                "/api/v1/me/avatar", headers={**headers, "Content-Type": content_type}, content=body
            )
            assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert await MemberAvatar.count() == 0
        assert (await Member.select(Member.avatar_url).where(Member.id == member["member"]["id"]).first())[
            "avatar_url"
        ] == ""

        photo = io.BytesIO()
        Image.new("RGB", (640, 480), "#3366CC").save(photo, "PNG")
        uploaded = await client.post(
            "/api/v1/me/avatar", headers=headers, files={"file": ("me.png", photo.getvalue(), "image/png")}
        )
        assert uploaded.status_code == 200, uploaded.text
        url = uploaded.json()["avatarUrl"]
        served = await client.get(url)
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(served.content)).size == (256, 256)
        assert (await client.get("/api/v1/me", headers=headers)).json()["avatarUrl"] == url
        assert (await client.get("/api/v1/avatars/" + "0" * 64 + ".jpg")).status_code == 404

        campaign = await new_campaign(client)
        drawn = await poster(client, member, "png", campaignId=campaign["id"])
        pixel = Image.open(io.BytesIO(drawn.content)).convert("RGB").getpixel((132, 136))  # the avatar's middle
        assert all(
            abs(got - want) <= 3 for got, want in zip(pixel, (0x33, 0x66, 0xCC), strict=True)
        )  # JPEG-stored, PNG-drawn


async def test_poster_requests_are_limited_per_member_and_bad_ones_refused(make_client, demo):
    async with make_client(poster_limit_per_minute=3) as client:
        member = await member_login(client, openid="oPoster00000000000000000005")
        campaign = await new_campaign(client)
        assert (await poster(client, member, "png")).status_code == 422  # neither target
        both = await poster(client, member, "png", campaignId=campaign["id"], groupId=1)
        assert both.status_code == 422
        for _ in range(3):
            assert (await poster(client, member, "jpeg", campaignId=campaign["id"])).status_code == 200
        limited = await poster(client, member, "jpeg", campaignId=campaign["id"])
        assert (limited.status_code, limited.json()["code"]) == (429, "posters.rate_limited")
        assert int(limited.headers["retry-after"]) > 0
        other = await member_login(client, openid="oPoster00000000000000000006")
        assert (await poster(client, other, "png", campaignId=campaign["id"])).status_code == 200  # per member
        missing = await poster(client, other, "png", campaignId=999999)
        assert (missing.status_code, missing.json()["code"]) == (404, "referrals.target_not_found")
        assert (await poster(client, other, "gif", campaignId=campaign["id"])).status_code == 422


async def test_drawing_runs_off_the_event_loop(client, demo):
    from backend.posters import service
    from backend.posters.service import PosterCache

    campaign = await new_campaign(client)
    member = await member_login(client, openid="oPoster00000000000000000007")
    planned = await service.plan(
        member["member"]["id"],
        campaign_id=campaign["id"],
        group_id=None,
        base_url="https://m.example.com/s/",
        image_format="png",
        cache=PosterCache(),
    )
    async with Ticker() as drawing:
        data = await service.draw(planned, "png")
    assert decode(data) == [planned.url]
    with_loop_blocked = Ticker()
    async with with_loop_blocked:
        render.render(
            render.PosterInput(
                template=planned.template, fields=planned.fields, url=planned.url, avatar=None, product=None
            ),
            "png",
        )
    # Two turns of the loop while drawing show it was never held for the whole drawing; the same drawing on
    # the loop starves it (a third turn was too many to ask of a loaded machine).
    assert drawing.ticks >= 2 and with_loop_blocked.ticks <= 1


async def test_a_burst_for_one_poster_plans_and_draws_it_once(client, demo, monkeypatch):
    from backend.posters import service

    drawings = []

    def counted_render(job, image_format):
        drawings.append(job.url)
        return render.render(job, image_format)

    monkeypatch.setattr(service, "render", counted_render)
    campaign = await new_campaign(client)
    member = await member_login(client, openid="oPoster00000000000000000008")
    answers = await asyncio.gather(*(poster(client, member, "png", campaignId=campaign["id"]) for _ in range(12)))
    assert [answer.status_code for answer in answers] == [200] * 12
    assert len({answer.content for answer in answers}) == 1 and len({answer.headers["etag"] for answer in answers}) == 1
    assert len(drawings) == 1  # the other eleven waited for the one drawing
    assert decode(answers[0].content) == [drawings[0]]


async def test_a_drawing_outlives_a_request_that_gave_up_on_it():
    from backend.posters.service import PosterCache

    cache, release = PosterCache(), asyncio.Event()

    async def draw() -> bytes:
        await release.wait()
        return b"poster"

    first = asyncio.ensure_future(cache.get_or_draw("k", draw))
    second = asyncio.ensure_future(cache.get_or_draw("k", draw))
    await asyncio.sleep(0)
    first.cancel()  # its client went away mid-drawing
    release.set()
    assert await second == (b"poster", "joined")
    assert first.cancelled() and cache.get("k") == b"poster"
    assert await cache.get_or_draw("k", draw) == (b"poster", "hit")


async def test_forgetting_a_member_replans_only_their_posters():
    from backend.posters.service import PosterCache

    cache, loads = PosterCache(plan_seconds=60), []

    async def load(name):
        loads.append(name)
        return name

    for member_id in (1, 2):
        await cache.plans.read((member_id, 5, None, "png", "u"), lambda member_id=member_id: load(member_id))
    cache.forget_member(1)
    for member_id in (1, 2):
        await cache.plans.read((member_id, 5, None, "png", "u"), lambda member_id=member_id: load(member_id))
    assert loads == [1, 2, 1]
