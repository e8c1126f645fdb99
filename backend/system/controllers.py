import hmac
import ipaddress

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from backend.core import metrics, openapi
from backend.core.clock import utcnow
from backend.core.db import ping_database
from backend.core.errors import Forbidden
from backend.payments import service as payments
from backend.services import Services

READINESS_TIMEOUT_SECONDS = 2.0


class SystemController(Controller):
    tags = ["System"]

    @get("/healthz", operation_id="Health")
    async def health(self) -> dict[str, str]:
        """Liveness check.

        The process is up (no dependency is asked): for a load balancer's liveness check."""
        return {"status": "ok"}

    @get("/readyz", operation_id="Ready", responses=openapi.errors(503))
    async def ready(self, services: NamedDependency[Services]) -> Response[dict[str, object]]:
        """Readiness check.

        The database (and Redis, when configured) answer: 200 to take traffic, 503 with the failing check."""
        checks = {"database": "ok" if await ping_database(timeout=READINESS_TIMEOUT_SECONDS) else "down"}
        if services.settings.redis_url:
            checks["redis"] = "ok" if await services.kv.ping() else "down"
        ready = all(state == "ok" for state in checks.values())
        body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": checks}
        if not ready:
            body.update(code="service.unavailable", message="A dependency is not answering.", details=checks)
        return Response(body, status_code=200 if ready else 503)

    @get("/metrics", operation_id="Metrics", media_type="text/plain; version=0.0.4")
    async def metrics(self, request: Request, services: NamedDependency[Services]) -> Response[bytes]:
        """Prometheus metrics.

        Prometheus's text format, every worker's counts added up: requests by route template and status,
        their latency, orders by kind and event, trades and refunds still unknown, how late the sweeper is,
        sweeper passes, dependency errors, poster cache hits. For METRICS_TOKEN's bearer or the addresses of
        METRICS_ALLOW_FROM (loopback by default)."""
        _check_scraper(request, services)
        state = _DatabaseState(await payments.pending(), now=utcnow())
        registry = CollectorRegistry(auto_describe=False)
        registry.register(state)
        return Response(metrics.exposition() + generate_latest(registry))


def _check_scraper(request: Request, services: NamedDependency[Services]) -> None:
    settings = services.settings
    sent = request.headers.get("authorization", "")
    if settings.metrics_token and hmac.compare_digest(sent.encode(), f"Bearer {settings.metrics_token}".encode()):
        return
    client = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        address = None
    if address is not None and any(address in ipaddress.ip_network(net) for net in settings.metrics_allow_from):
        return
    raise Forbidden("The metrics are for the scraper: send METRICS_TOKEN as a bearer token.", client=client)


class _DatabaseState(Collector):
    """What the database knows at the scrape, as gauges."""

    def __init__(self, pending: payments.Pending, *, now) -> None:
        self.pending, self.now = pending, now

    def collect(self):
        unknown = GaugeMetricFamily(
            "mall_payments_unknown", "Trades and refunds whose outcome is not known yet.", labels=["what"]
        )
        unknown.add_metric(["trade"], self.pending.trades_unknown)
        unknown.add_metric(["refund"], self.pending.refunds_unknown)
        yield unknown
        lag = self.pending.oldest_due
        yield GaugeMetricFamily(
            "mall_sweeper_lag_seconds",
            "How long the earliest due step of a trade or refund has waited for the sweeper (0: none waits).",
            value=max((self.now - lag).total_seconds(), 0.0) if lag is not None else 0.0,
        )
