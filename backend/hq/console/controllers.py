"""The HQ console at /hq/: pages drawn on the server for people who would rather look than read the API.

A staff account signs in with its password; the session is its access token in an HttpOnly, SameSite=Strict cookie
that only /hq/ is sent, checked as a bearer token is (an ended session or a deactivated account signs out at once).
Every form that changes something carries a token derived from the session, so that no other site can post it. The
pages call the same services as the API, with the same store scope: a store manager sees their stores' rows.
"""

import hashlib
import hmac
from datetime import timedelta
from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Stream, Template
from litestar.static_files import create_static_files_router

from backend.core import spreadsheet
from backend.core.auth import PrincipalKind
from backend.core.clock import business_day, utcnow
from backend.core.errors import DomainError, Forbidden, InvalidRequest, Unauthenticated
from backend.core.paging import PathId, business_days
from backend.core.ratelimit import client_address
from backend.coupons import service as coupons
from backend.coupons.schemas import CouponCampaignPatch
from backend.groupbuy import service as groupbuy
from backend.groupbuy.schemas import CampaignPatch
from backend.hq import charts, report, service
from backend.hq.controllers import ORDERS_CSV_HEADER, order_filter, order_rows
from backend.orders import service as orders
from backend.orders.tables import OrderKind, OrderStatus
from backend.referrals import service as referrals
from backend.referrals.schemas import ReferralCampaignPatch
from backend.services import Services
from backend.stores import service as stores
from backend.stores.auth import CurrentStaff, staff_of
from backend.stores.schemas import StaffPatch
from backend.stores.tables import StaffRole

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
COOKIE = "hq_session"
SALES_LINES = 8  # stores drawn one line each on the sales chart, the rest as one
static_files = create_static_files_router(
    path="/hq/static", directories=[HERE / "static"], include_in_schema=False, cache_control=None
)


class SignInFirst(Exception):
    """No session, or one that has ended: the page answers with the sign-in page."""


def _csrf(token: str, secret: str) -> str:
    return hmac.new(secret.encode(), f"hq-console:{token}".encode(), hashlib.sha256).hexdigest()[:32]


async def _staff(request: Request, services: Services) -> tuple[CurrentStaff, str]:
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInFirst()
    try:
        staff = await staff_of(services.tokens.decode(token), request)
    except Unauthenticated:
        raise SignInFirst() from None
    if staff.role not in (StaffRole.hq_admin, StaffRole.store_manager):
        raise Forbidden("The console is HQ's and store managers'.")
    return staff, _csrf(token, services.settings.secret_key)


async def _form(request: Request, csrf: str) -> dict[str, str]:
    form = dict(await request.form())
    if not hmac.compare_digest(str(form.get("csrf", "")), csrf):
        raise Forbidden("This form is not from this console (sign in again).")
    return {key: str(value) for key, value in form.items()}


def _page(name: str, staff: CurrentStaff | None, csrf: str = "", status: int = 200, **context: Any) -> Template:
    return Template(
        template_name=name,
        context={"staff": staff, "csrf": csrf, "is_hq": bool(staff and staff.is_hq), **context},
        status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def _error_page(request: Request, error: Exception) -> Response:
    if isinstance(error, SignInFirst):
        return Redirect("/hq/sign-in")
    assert isinstance(error, DomainError)
    return _page("error.html", None, status=error.status_code, code=error.code, message=error.message)


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


class ConsoleController(Controller):
    path = "/hq"
    include_in_schema = False
    exception_handlers = {SignInFirst: _error_page, DomainError: _error_page}

    @get("/")
    async def home(self) -> Redirect:
        return Redirect("/hq/members")

    @get("/sign-in")
    async def sign_in_page(self) -> Template:
        return _page("sign_in.html", None)

    @post("/sign-in", status_code=303)
    async def sign_in(self, request: Request, services: NamedDependency[Services]) -> Response:
        form = dict(await request.form())
        try:
            account = await stores.login_staff(
                str(form.get("username", ""))[:64],
                str(form.get("password", ""))[:128],
                client=client_address(request.scope),
                kv=services.kv,
                failure_limit=services.settings.login_failure_limit,
                client_failure_limit=services.settings.login_failure_limit_per_client,
                window=services.settings.login_failure_window_seconds,
            )
        except DomainError as error:
            return _page("sign_in.html", None, status=error.status_code, message=error.message)
        if account.role == StaffRole.cashier:
            return _page("sign_in.html", None, status=403, message="The console is HQ's and store managers'.")
        token = services.tokens.issue(PrincipalKind.staff, account.id, version=account.token_version)
        cookie = Cookie(
            key=COOKIE,
            value=token,
            path="/hq",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=services.tokens.ttl(PrincipalKind.staff),
        )
        return Redirect("/hq/members", cookies=[cookie], status_code=303)

    @post("/sign-out", status_code=303)
    async def sign_out(self) -> Redirect:
        return Redirect("/hq/sign-in", cookies=[Cookie(key=COOKIE, value="", path="/hq", max_age=0)], status_code=303)

    @get("/members")
    async def members(self, request: Request, services: NamedDependency[Services]) -> Template:
        staff, csrf = await _staff(request, services)
        q = request.query_params.get("q", "").strip()[:64]
        if any(ord(char) < 32 for char in q):
            raise InvalidRequest("A search word has no control characters.")
        search, rows = await service.search_members(q or None, codes=services.member_codes, store_ids=staff.scope)
        return _page("members.html", staff, csrf, q=q, matched_by=search.by, rows=rows)

    @get("/members/{member_id:int}")
    async def member(self, request: Request, services: NamedDependency[Services], member_id: PathId) -> Template:
        staff, csrf = await _staff(request, services)
        page = await service.member_page(member_id, store_ids=staff.scope, staff_id=staff.id)
        return _page("member.html", staff, csrf, page=page, yuan=_yuan)

    def _order_filter(self, request: Request, staff: CurrentStaff) -> tuple[orders.OrderFilter, dict[str, str]]:
        params = {key: request.query_params.get(key, "") for key in ("storeId", "kind", "status", "from", "to")}
        try:
            store_id = int(params["storeId"]) if params["storeId"] else None
            kind = OrderKind(params["kind"]) if params["kind"] else None
            status = OrderStatus(params["status"]) if params["status"] else None
        except ValueError:
            raise InvalidRequest("No such store, kind or status.") from None
        which = order_filter(staff, store_id, kind, status, params["from"] or None, params["to"] or None)
        return which, params

    @get("/orders")
    async def orders_page(self, request: Request, services: NamedDependency[Services]) -> Template:
        staff, csrf = await _staff(request, services)
        which, params = self._order_filter(request, staff)
        views = await orders.list_orders(which, limit=100)
        shown = await stores.list_stores(staff.scope)
        query = "&".join(f"{key}={value}" for key, value in params.items() if value)
        return _page(
            "orders.html",
            staff,
            csrf,
            views=views,
            params=params,
            stores=shown,
            kinds=[kind.value for kind in OrderKind],
            statuses=[status.value for status in OrderStatus],
            csv_url=f"/hq/orders.csv?{query}",
            yuan=_yuan,
        )

    @get("/orders.csv")
    async def orders_csv(self, request: Request, services: NamedDependency[Services]) -> Stream:
        staff, _ = await _staff(request, services)
        which, _ = self._order_filter(request, staff)
        return Stream(
            spreadsheet.streamed(ORDERS_CSV_HEADER, order_rows(which)),
            media_type="text/csv",
            headers=spreadsheet.attachment("orders.csv"),
        )

    @get("/campaigns")
    async def campaigns(self, request: Request, services: NamedDependency[Services]) -> Template:
        staff, csrf = await _staff(request, services)
        staff.require_role(StaffRole.hq_admin)
        group_buys = await groupbuy.list_campaigns(before_id=None, limit=100)
        referral_list = await referrals.list_campaigns(before_id=None, limit=100)
        coupon_list = await coupons.list_campaigns(limit=100, before_id=None)
        return _page(
            "campaigns.html",
            staff,
            csrf,
            now=utcnow(),
            group_buys=group_buys,
            group_counts=await groupbuy.campaign_counts([c.id for c in group_buys]),
            referrals=referral_list,
            referral_counts=await referrals.campaign_counts([c.id for c in referral_list]),
            coupons=coupon_list,
        )

    @post("/campaigns/{kind:str}/{campaign_id:int}/close", status_code=303)
    async def close_campaign(
        self, request: Request, services: NamedDependency[Services], kind: FromPath[str], campaign_id: PathId
    ) -> Redirect:
        staff, csrf = await _staff(request, services)
        staff.require_role(StaffRole.hq_admin)
        await _form(request, csrf)
        if kind == "groupbuy":
            await groupbuy.update_campaign(campaign_id, CampaignPatch(closed=True))
        elif kind == "referral":
            await referrals.update_campaign(campaign_id, ReferralCampaignPatch(closed=True))
        elif kind == "coupon":
            await coupons.update_campaign(campaign_id, CouponCampaignPatch(closed=True))
        else:
            raise InvalidRequest("No such kind of campaign.")
        return Redirect("/hq/campaigns", status_code=303)

    @get("/staff")
    async def staff_page(self, request: Request, services: NamedDependency[Services]) -> Template:
        staff, csrf = await _staff(request, services)
        staff.require_role(StaffRole.hq_admin)
        accounts = await stores.list_staff(store_ids=None, role=None, active=None, before_id=None, limit=100)
        codes = {row.id: row.code for row in await stores.list_stores(None)}
        return _page("staff.html", staff, csrf, accounts=accounts, codes=codes, roles=[r.value for r in StaffRole])

    @post("/staff/{staff_id:int}", status_code=303)
    async def edit_staff(self, request: Request, services: NamedDependency[Services], staff_id: PathId) -> Redirect:
        staff, csrf = await _staff(request, services)
        staff.require_role(StaffRole.hq_admin)
        form = await _form(request, csrf)
        if form.get("action") == "deactivate":
            patch = StaffPatch(active=False)
        elif form.get("action") == "activate":
            patch = StaffPatch(active=True)
        elif form.get("action") == "password" and 8 <= len(form.get("password", "")) <= 128:
            patch = StaffPatch(password=form["password"])
        else:
            raise InvalidRequest("Deactivate, activate, or a new password of 8 to 128 characters.")
        await stores.update_staff(staff_id, patch, by_staff_id=staff.id)
        return Redirect("/hq/staff", status_code=303)

    @get("/report")
    async def report_page(self, request: Request, services: NamedDependency[Services]) -> Template:
        staff, csrf = await _staff(request, services)
        params = {key: request.query_params.get(key) or None for key in ("from", "to")}
        since, until = business_days(params["from"], params["to"], default_days=14, longest=report.MAX_DAYS)
        found = await report.store_report(since, until, store_ids=staff.scope)
        names = {row.id: row for row in await stores.list_stores(None)}
        days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
        index = {day: n for n, day in enumerate(days)}
        per_store: dict[int, list[int]] = {}
        new_members = {channel: [0] * len(days) for channel in ("cashier", "miniprogram", "referral")}
        for row in found.rows:
            per_store.setdefault(row.store_id, [0] * len(days))[index[row.day]] = row.figures.sales_fen
            for channel, values in new_members.items():
                values[index[row.day]] += getattr(row.figures, f"new_members_{channel}")
        ranked = sorted(per_store, key=lambda store_id: -sum(per_store[store_id]))
        series = [charts.Series(names[store_id].code, per_store[store_id]) for store_id in ranked[:SALES_LINES]]
        if rest := ranked[SALES_LINES:]:
            series.append(charts.Series("其他 others", [sum(per_store[s][n] for s in rest) for n in range(len(days))]))
        sales = charts.lines("sales", "各门店每日销售额 Sales per store and day", days, series, label=_axis_yuan)
        members = charts.stacked_bars(
            "new-members",
            "每日新会员 New members by channel",
            days,
            [
                charts.Series("收银台 till", new_members["cashier"]),
                charts.Series("小程序 mini-program", new_members["miniprogram"]),
                charts.Series("推荐 referral", new_members["referral"]),
            ],
        )
        return _page(
            "report.html",
            staff,
            csrf,
            since=since,
            until=until,
            today=business_day(utcnow()),
            sales_chart=sales,
            members_chart=members,
            rows=[(names[store_id], found.by_store[store_id]) for store_id in ranked],
            yuan=_yuan,
        )


def _axis_yuan(fen: int) -> str:
    return f"¥{fen / 100:,.0f}"
