"""The API docs pages, Scalar at /schema and Swagger UI at /schema/swagger, with no internet.

Their scripts and styles are served by this server from assets/docs/vendor/, at the versions pinned in
assets/docs/bundles.txt (fetched by scripts/serve and scripts/test, or the Dockerfile), each beside its licence,
which the page names with `<link rel="license">`. Nothing on either page loads from another host: no CDN, no web
font, no favicon. A checkout without the bundles says so on the page instead of showing a blank one.
"""

import html
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

from backend.settings import PROJECT_ROOT

VENDOR_DIR = PROJECT_ROOT / "assets" / "docs" / "vendor"
ASSETS_PATH = "/schema/assets"
_ASSETS_MAX_AGE = 3600  # the names carry no version: an upgrade reaches a browser within the hour


class _OfflinePage(OpenAPIRenderPlugin):
    bundle = ""  # its directory under VENDOR_DIR
    files: tuple[str, ...] = ()  # what the page loads from it

    def __init__(self, *, path: str) -> None:
        super().__init__(path=path, favicon="")

    def asset(self, name: str) -> str:
        return f"{ASSETS_PATH}/{self.bundle}/{name}"

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(openapi_schema["info"]["title"])
        missing = [name for name in self.files if not (VENDOR_DIR / self.bundle / name).is_file()]
        if missing:
            body = (
                f"<p>This page's scripts are not installed ({html.escape(', '.join(missing))} under "
                f"assets/docs/vendor/{self.bundle}/): run scripts/serve once, or see assets/docs/bundles.txt. "
                f'The OpenAPI document itself is <a href="{self.get_openapi_json_route(request)}">here</a>.</p>'
            )
            head = ""
        else:
            head, body = self.page(request)
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'{self.style}<link rel="license" href="{self.asset("LICENSE.txt")}">{head}</head>'
            f"<body>{body}</body></html>"
        ).encode()

    def page(self, request: Request) -> tuple[str, str]:
        raise NotImplementedError


class ScalarPage(_OfflinePage):
    bundle = "scalar"
    files = ("standalone.js",)
    # Scalar's defaults would fetch its web fonts from its servers, count visits there and offer its hosted
    # services (an AI agent, MCP, a toolbar to deploy and share the document): none of that belongs on this page.
    configuration = {
        "withDefaultFonts": False,
        "telemetry": False,
        "agent": {"disabled": True},
        "mcp": {"disabled": True},
        "showDeveloperTools": "never",
    }

    def page(self, request: Request) -> tuple[str, str]:
        configuration = html.escape(msgspec.json.encode(self.configuration).decode())
        return "", (
            "<noscript>The API reference needs JavaScript; the OpenAPI document is "
            f'<a href="{self.get_openapi_json_route(request)}">here</a>.</noscript>'
            f'<script id="api-reference" data-url="{self.get_openapi_json_route(request)}" '
            f'data-configuration="{configuration}"></script>'
            f'<script src="{self.asset("standalone.js")}"></script>'
        )


class SwaggerPage(_OfflinePage):
    bundle = "swagger"
    files = ("swagger-ui-bundle.js", "swagger-ui.css")

    def page(self, request: Request) -> tuple[str, str]:
        options = msgspec.json.encode(
            # validatorUrl: no badge from a validator on another host
            {
                "url": self.get_openapi_json_route(request),
                "dom_id": "#swagger-ui",
                "deepLinking": True,
                "validatorUrl": None,
            }
        ).decode()
        return f'<link rel="stylesheet" href="{self.asset("swagger-ui.css")}">', (
            f'<div id="swagger-ui"></div><script src="{self.asset("swagger-ui-bundle.js")}"></script>'
            f"<script>window.ui = SwaggerUIBundle({options});</script>"
        )


def render_plugins() -> list[OpenAPIRenderPlugin]:
    return [ScalarPage(path="/"), SwaggerPage(path="/swagger")]


def assets_router() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[VENDOR_DIR],
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=_ASSETS_MAX_AGE),
    )
