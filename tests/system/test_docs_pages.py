"""The docs pages render in a real headless Chromium (Debian's) with no network: every request they make is to
this server, and a request to any other host is refused before it leaves the browser."""

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Page, Route, async_playwright

from backend.system import docs
from tests.conftest import served_process

CHROMIUM = shutil.which("chromium")
# As the machine's own checks start it: no sign-in, sync, updates or other background traffic of Chromium's own.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def offline_page() -> AsyncIterator["Offline"]:
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: scripts/test installs Debian's chromium package")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            offline = Offline(await browser.new_page())
            await offline.page.route("**/*", offline.route)
            yield offline
        finally:
            await browser.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, unused_tcp_port_factory) -> Iterator[str]:
    with served_process(unused_tcp_port_factory(), VAR_DIR=str(tmp_path_factory.mktemp("docs"))) as server:
        yield server.base


class Offline:
    """A page whose requests to this server go through and whose requests anywhere else are refused, and noted."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.local: list[str] = []
        self.elsewhere: list[str] = []
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            self.local.append(urlsplit(url).path)
            await route.continue_()
        else:
            self.elsewhere.append(url)
            await route.abort("internetdisconnected")


def operations(base: str) -> list[dict]:
    document = httpx.get(f"{base}/schema/openapi.json").json()
    return [operation for item in document["paths"].values() for operation in item.values()]


async def test_the_scalar_page_lists_every_operation_with_no_network(served):
    every = operations(served)
    async with offline_page() as offline:
        await offline.page.goto(f"{served}/schema")
        menu = offline.page.locator("aside").first
        await menu.get_by_text("System", exact=True).first.wait_for(timeout=20_000)
        tags = list(dict.fromkeys(tag for operation in every for tag in operation["tags"]))
        for tag in tags[1:]:  # the first tag opens by itself; a click on it would close it
            await menu.get_by_text(tag, exact=True).first.click()
        listed = await menu.inner_text()
        licence = await _licence(offline.page, served)
    assert [operation["summary"] for operation in every if operation["summary"] not in listed] == []
    assert offline.elsewhere == [] and offline.errors == []
    assert offline.local == ["/schema", "/schema/assets/scalar/standalone.js", "/schema/openapi.json"]
    assert licence.startswith("MIT License")


async def test_the_swagger_page_renders_every_operation_with_no_network(served):
    every = operations(served)
    async with offline_page() as offline:
        await offline.page.goto(f"{served}/schema/swagger")
        await offline.page.locator(".opblock").first.wait_for(timeout=20_000)
        shown = await offline.page.locator(".opblock-summary-path").all_inner_texts()
        authorize = await offline.page.get_by_role("button", name="Authorize").is_visible()
        licence = await _licence(offline.page, served)
    assert len(shown) == len(every)
    assert authorize  # the bearer schemes are declared
    assert offline.elsewhere == [] and offline.errors == []
    assert set(offline.local) == {
        "/schema/swagger",
        "/schema/assets/swagger/swagger-ui.css",
        "/schema/assets/swagger/swagger-ui-bundle.js",
        "/schema/openapi.json",
    }
    assert "Apache License" in licence


async def _licence(page: Page, base: str) -> str:
    """The licence the page names with <link rel="license">, as this server serves it."""
    href = await page.locator('link[rel="license"]').get_attribute("href")
    answer = httpx.get(f"{base}{href}")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return answer.text


async def test_a_checkout_without_the_bundles_says_so_on_the_page(documented_client, monkeypatch, tmp_path):
    monkeypatch.setattr(docs, "VENDOR_DIR", tmp_path)
    client = documented_client
    answer = await client.get("/schema/swagger")
    assert answer.status_code == 200
    assert "scripts are not installed (swagger-ui-bundle.js, swagger-ui.css" in answer.text
    assert '<a href="/schema/openapi.json">' in answer.text and "<script" not in answer.text
