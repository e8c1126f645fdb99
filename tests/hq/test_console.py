"""The HQ console in a real headless Chromium (Debian's) against this server, with no network: sign in, find the
demo member by phone and open their page, list yesterday's orders and take them as CSV, close a campaign,
deactivate cashier2 (whose next request is 401), and see the store report's charts drawn."""

import csv
import io
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from backend.core.clock import business_day, utcnow
from backend.groupbuy.tables import Campaign
from backend.orders.tables import Order
from tests.conftest import PASSWORD, member_login, served_process, staff_login
from tests.groupbuy.test_seats import new_campaign
from tests.hq.test_hq_reads import checkout, till  # noqa: F401  (the fixture)
from tests.members.test_merge import phone_code
from tests.system.test_docs_pages import offline_page


@pytest.fixture
def served(tmp_path, unused_tcp_port_factory):
    with served_process(unused_tcp_port_factory(), VAR_DIR=str(tmp_path)) as server:
        yield server.base


async def sign_in(page, base: str, username: str) -> None:
    await page.goto(f"{base}/hq/")
    assert page.url.endswith("/hq/sign-in")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/hq/members")


async def test_hq_runs_its_chain_in_the_browser(till, demo, served):  # noqa: F811
    shopper = await member_login(till, openid="oConsole00000000000000001")
    await till.post(
        "/api/v1/me/phone", headers=shopper["headers"], json={"code": await phone_code(till, "13800138000")}
    )
    first = await checkout(till, demo, "cashier1", "S001", "oConsole00000000000000001", "console-1", amount=4200)
    second = await checkout(till, demo, "cashier2", "S002", "oConsole00000000000000002", "console-2", amount=1800)
    yesterday = utcnow() - timedelta(days=1)
    await Order.update({Order.created_at: yesterday, Order.paid_at: yesterday}).where(Order.id == first["id"])
    campaign = await new_campaign(till, demo)
    cashier2 = await staff_login(till, "cashier2")

    async with offline_page() as offline:
        page = offline.page
        page.on("dialog", lambda dialog: dialog.accept())
        await sign_in(page, served, "hq")

        await page.fill("input[name=q]", "13800138000")
        await page.click("form[role=search] button")
        rows = page.locator("#members tbody tr")
        assert await rows.count() == 1 and "138****8000" in await rows.first.inner_text()
        await rows.first.locator("a").click()
        await page.wait_for_url(f"{served}/hq/members/{first['memberId']}")
        assert "84" in await page.locator("#points").inner_text()  # 42 yuan at 2 points a yuan
        assert str(first["id"]) in await page.locator("#recent-orders").inner_text()

        day = business_day(yesterday).isoformat()
        await page.goto(f"{served}/hq/orders")
        await page.fill("input[name=from]", day)
        await page.fill("input[name=to]", day)
        await page.click(".filters button[type=submit]")
        listed = await page.locator("#orders tbody tr").all_inner_texts()
        assert len(listed) == 1 and str(first["id"]) in listed[0]
        async with page.expect_download() as download:
            await page.click("#csv")
        saved = (await download.value).path()
        text = Path(await saved).read_text(encoding="utf-8-sig")
        assert [int(row[0]) for row in list(csv.reader(io.StringIO(text)))[1:]] == [first["id"]]

        await page.goto(f"{served}/hq/campaigns")
        await page.locator(f'#groupbuy-campaigns tr[data-id="{campaign["id"]}"] button').click()
        await page.wait_for_url(f"{served}/hq/campaigns")
        assert "closed" in await page.locator(f'#groupbuy-campaigns tr[data-id="{campaign["id"]}"]').inner_text()

        await page.goto(f"{served}/hq/staff")
        await page.locator('#staff tr[data-username="cashier2"] button.danger').click()
        await page.wait_for_url(f"{served}/hq/staff")
        assert "inactive" in await page.locator('#staff tr[data-username="cashier2"]').inner_text()

        await page.goto(f"{served}/hq/report")
        sales = page.locator("svg[data-chart=sales] polyline")
        totals = {
            await line.get_attribute("data-series"): await line.get_attribute("data-total")
            for line in await sales.all()
        }
        assert totals == {"S001": "4200", "S002": "1800"}
        bars = page.locator("svg[data-chart=new-members] rect[data-series]")
        # The second payer enrolled at S002's till; the first signed in to the mini-program, at no store.
        assert [await bar.get_attribute("data-series") for bar in await bars.all()] == ["收银台 till"]
        assert "¥60.00" not in await page.locator("#report").inner_text()  # per store, not summed across
        assert "¥42.00" in await page.locator("#report").inner_text()
    assert offline.elsewhere == [] and offline.errors == []
    assert "/hq/static/console.css" in offline.local

    assert (await Campaign.select(Campaign.closed_at).where(Campaign.id == campaign["id"]).first())["closed_at"]
    assert httpx.get(f"{served}/api/v1/cashier/me", headers=cashier2).status_code == 401
    assert second["id"]


async def test_a_cashier_cannot_use_the_console_and_a_manager_sees_their_stores(till, demo, served):  # noqa: F811
    await checkout(till, demo, "cashier1", "S001", "oConsole00000000000000011", "console-11", amount=1000)
    await checkout(till, demo, "cashier2", "S002", "oConsole00000000000000012", "console-12", amount=2000)
    async with offline_page() as offline:
        page = offline.page
        await page.goto(f"{served}/hq/sign-in")
        await page.fill("input[name=username]", "cashier1")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        assert "HQ's and store managers'" in await page.locator(".error").inner_text()
        await sign_in(page, served, "manager1")
        await page.goto(f"{served}/hq/orders")
        assert len(await page.locator("#orders tbody tr").all()) == 1
        await page.goto(f"{served}/hq/campaigns")
        assert "auth.forbidden" in await page.content()
    # A form posted from elsewhere, without the session's token, changes nothing.
    cookies = {"hq_session": "not-a-session"}
    forged = httpx.post(f"{served}/hq/staff/{demo['cashier1']}", data={"action": "deactivate"}, cookies=cookies)
    assert forged.status_code in (302, 303) and forged.headers["location"] == "/hq/sign-in"
    signed = httpx.post(f"{served}/hq/sign-in", data={"username": "hq", "password": PASSWORD})
    session = {"hq_session": signed.cookies["hq_session"]}
    assert signed.status_code == 303 and signed.cookies["hq_session"]
    tokenless = httpx.post(f"{served}/hq/staff/{demo['cashier1']}", data={"action": "deactivate"}, cookies=session)
    assert tokenless.status_code == 403
    cashier1 = await staff_login(till, "cashier1")
    assert httpx.get(f"{served}/api/v1/cashier/me", headers=cashier1).status_code == 200  # still active
