"""The application factory: one Litestar app for the mini-program, the tills and HQ."""

import gc
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from typing import TypeVar

import httpx
from litestar import Litestar
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from backend.cashier.controllers import CashierOrderController, StorePaymentController
from backend.cashier.service import CheckoutPolicy
from backend.catalogue.controllers import AdminCatalogueController, CatalogueController, StoreInventoryController
from backend.core import openapi
from backend.core.auth import TokenIssuer, authorise
from backend.core.bodies import StrictBodyRequest
from backend.core.db import close_database, open_database
from backend.core.errors import EXCEPTION_HANDLERS
from backend.core.kv import KV, kv_from_url
from backend.core.logs import logging_config
from backend.core.ratelimit import RateLimitMiddleware
from backend.core.requestid import request_id_middleware
from backend.coupons.controllers import AdminCouponController, CouponCampaignController, MyCouponsController
from backend.groupbuy.controllers import (
    AdminGroupBuyController,
    CashierGroupBuyController,
    GroupBuyController,
    GroupBuySeatController,
    MyGroupBuyController,
)
from backend.hq.console.controllers import TEMPLATES as CONSOLE_TEMPLATES
from backend.hq.console.controllers import ConsoleController
from backend.hq.console.controllers import static_files as console_static
from backend.hq.controllers import (
    AdminAuditController,
    AdminMembersController,
    AdminOrdersController,
    AdminReportController,
)
from backend.mall.controllers import MyMallOrdersController, PickupController, StoreMallOrdersController
from backend.members.code import MemberCodes
from backend.members.controllers import (
    AdminMemberController,
    CashierMemberController,
    MeController,
    MiniProgramAuthController,
)
from backend.members.wechat import WeChatCode2Session, WeChatPhoneNumbers
from backend.membership.controllers import (
    AdminMemberTagController,
    AdminSegmentController,
    AdminTagController,
    AdminTierController,
    MyMembershipController,
)
from backend.orders.controllers import MyOrdersController
from backend.payments.controllers import WeChatPayNotifyController
from backend.payments.policy import PaymentPolicy
from backend.payments.provider import PaymentProvider
from backend.payments.wechatpay import WeChatPayProvider
from backend.payments.wechatpay_protocol import load_private_key, load_public_key
from backend.plans.controllers import AdminPlanController, MyPurchasesController, PlanController
from backend.points.controllers import AdminPointsController, MyPointsController
from backend.posters.controllers import AvatarController, PosterController
from backend.posters.service import PosterCache
from backend.referrals.controllers import (
    AdminReferralController,
    MyReferralController,
    ReferralCampaignController,
    ShareController,
)
from backend.sandbox.controllers import SandboxPaymentController, SandboxWalletController, SandboxWeChatController
from backend.sandbox.keys import load_sandbox_keys
from backend.sandbox.notify import SandboxNotifier
from backend.sandbox.provider import SandboxProvider
from backend.sandbox.wechat import SandboxCode2Session, SandboxPhoneNumbers
from backend.services import Services
from backend.settings import Settings, get_settings
from backend.stores.controllers import (
    AdminStoreController,
    CashierStoreController,
    StaffAuthController,
    StoreController,
)
from backend.sweeper import running_sweeper
from backend.system import docs
from backend.system.controllers import SystemController

logger = logging.getLogger(__name__)
T = TypeVar("T")


@cache
def _tls() -> ssl.SSLContext:
    """The TLS context of the app's outbound calls, one per process: loading the CA bundle takes tens of ms."""
    return httpx.create_ssl_context()


def create_app(
    settings: Settings | None = None,
    *,
    kv: KV | None = None,
    freeze_heap: bool = False,
    in_process_notifications: bool = False,
    build_document: bool = True,
) -> Litestar:
    """`in_process_notifications`: the sandbox posts its notifications to this app object directly
    (tests, which serve no socket) instead of to PAYMENT_NOTIFY_URL over the network. `build_document=False`: an app
    without its OpenAPI document and `/schema` pages, for the many apps the tests build that never read them
    (building and checking the document is half of what building an app costs)."""
    settings = settings or get_settings()
    kv = kv or kv_from_url(settings.redis_url)
    http = httpx.AsyncClient(headers={"User-Agent": "mall-backend"}, verify=_tls())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await open_database(pool_size=settings.db_pool_size)
        if freeze_heap:
            # Everything built so far lives as long as the process: keep it out of the
            # collector's full passes, which otherwise stall the loop for tens of ms.
            gc.collect()
            gc.freeze()
        try:
            async with running_sweeper(
                settings.sweep_interval_seconds, provider=payment_provider, policy=payment_policy
            ):
                yield
        finally:
            if notifier is not None and notifier.client is not None and notifier.client is not http:
                await notifier.client.aclose()
            await http.aclose()
            await kv.close()
            await close_database()

    route_handlers: list[object] = [
        SystemController,
        docs.assets_router(),
        CatalogueController,
        AdminCatalogueController,
        StoreInventoryController,
        MyMallOrdersController,
        AdminCouponController,
        CouponCampaignController,
        MyCouponsController,
        StoreMallOrdersController,
        StaffAuthController,
        MiniProgramAuthController,
        MeController,
        StoreController,
        AdminStoreController,
        AdminMembersController,
        AdminOrdersController,
        AdminAuditController,
        AdminReportController,
        ConsoleController,
        console_static,
        CashierStoreController,
        CashierMemberController,
        AdminMemberController,
        AdminTagController,
        AdminMemberTagController,
        AdminSegmentController,
        AdminTierController,
        MyMembershipController,
        AdminPlanController,
        PlanController,
        MyPurchasesController,
        MyPointsController,
        AdminPointsController,
        CashierOrderController,
        MyOrdersController,
        StorePaymentController,
        WeChatPayNotifyController,
        GroupBuyController,
        AdminGroupBuyController,
        GroupBuySeatController,
        MyGroupBuyController,
        PickupController,
        CashierGroupBuyController,
        ReferralCampaignController,
        ShareController,
        MyReferralController,
        AdminReferralController,
        PosterController,
        AvatarController,
    ]
    notifier: SandboxNotifier | None = None
    if settings.sandbox_enabled:
        route_handlers += [SandboxWeChatController, SandboxWalletController, SandboxPaymentController]
        wechat_login = SandboxCode2Session(app_id=settings.wechat_app_id)
        phone_numbers = SandboxPhoneNumbers()
        sandbox_keys = load_sandbox_keys(settings.var_dir, settings.secret_key)
        payment_provider: PaymentProvider = SandboxProvider(sandbox_keys, appid=settings.wechat_app_id)
        notifier = SandboxNotifier(sandbox_keys, url=settings.payment_notify_url)
    else:
        wechat = {
            "base_url": settings.wechat_api_base,
            "app_id": settings.wechat_app_id,
            "app_secret": settings.wechat_app_secret,
        }
        wechat_login = WeChatCode2Session(http, **wechat)
        phone_numbers = WeChatPhoneNumbers(http, kv, **wechat)
        payment_provider = _wechatpay(settings, http)

    tokens = TokenIssuer(
        settings.secret_key, member_ttl=settings.member_token_ttl_seconds, staff_ttl=settings.staff_token_ttl_seconds
    )
    checkout_policy = CheckoutPolicy.from_settings(settings)
    payment_policy = PaymentPolicy.from_settings(settings)
    services = Services(
        settings=settings,
        kv=kv,
        tokens=tokens,
        wechat_login=wechat_login,
        member_codes=MemberCodes(settings.secret_key),
        phone_numbers=phone_numbers,
        payment_provider=payment_provider,
        payment_policy=payment_policy,
        checkout_policy=checkout_policy,
        sandbox_notifier=notifier,
        posters=PosterCache(plan_seconds=settings.poster_plan_seconds),
    )
    app = Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan],
        dependencies={"services": Provide(_constant(services), sync_to_thread=False)},
        middleware=[
            DefineMiddleware(request_id_middleware, access_log=settings.access_log),
            DefineMiddleware(RateLimitMiddleware, kv=kv, limit=settings.rate_limit_per_minute),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=authorise(services),
        request_class=StrictBodyRequest,
        template_config=TemplateConfig(directory=CONSOLE_TEMPLATES, engine=JinjaTemplateEngine),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Mall API",
            version="1.0.0",
            path="/schema",
            components=openapi.COMPONENTS,
            use_handler_docstrings=True,
            render_plugins=docs.render_plugins(),
        )
        if build_document
        else None,
        # internal_error_handler logs every 500 with its request id; a 4xx is the caller's mistake, not ours.
        logging_config=LoggingConfig(log_exceptions="never", **logging_config(settings.log_format)),
        debug=settings.debug,
    )
    openapi.document(app)
    if build_document:
        openapi.close_request_bodies(app.openapi_schema)  # built now: the document is then checked at startup too
    if notifier is not None:
        if in_process_notifications:
            notifier.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50001)))
        else:
            notifier.client = http
    return app


def _wechatpay(settings: Settings, http: httpx.AsyncClient) -> WeChatPayProvider:
    assert settings.wechatpay_private_key_path is not None  # Settings.from_env requires it with wechatpay
    return WeChatPayProvider(
        http,
        base_url=settings.wechatpay_api_base,
        mchid=settings.wechatpay_mchid,
        appid=settings.wechat_app_id,
        serial_no=settings.wechatpay_serial_no,
        private_key=load_private_key(settings.wechatpay_private_key_path.read_bytes()),
        platform_keys={serial: load_public_key(path.read_bytes()) for serial, path in settings.wechatpay_platform_keys},
        api_v3_key=settings.wechatpay_api_v3_key.encode(),
        notify_url=settings.payment_notify_url,
    )


def _constant(value: T) -> Callable[[], T]:
    def provide() -> T:
        return value

    return provide


def create_served_app() -> Litestar:
    """The app as `python -m backend serve` runs it, in every worker process."""
    return create_app(freeze_heap=True)
