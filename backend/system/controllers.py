from litestar import Controller, Response, get
from litestar.di import NamedDependency

from backend.core.db import ping_database
from backend.services import Services

READINESS_TIMEOUT_SECONDS = 2.0


class SystemController(Controller):
    tags = ["System"]

    @get("/healthz", operation_id="Health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", operation_id="Ready")
    async def ready(self, services: NamedDependency[Services]) -> Response[dict[str, object]]:
        checks = {"database": "ok" if await ping_database(timeout=READINESS_TIMEOUT_SECONDS) else "down"}
        if services.settings.redis_url:
            checks["redis"] = "ok" if await services.kv.ping() else "down"
        ready = all(state == "ok" for state in checks.values())
        body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": checks}
        if not ready:
            body.update(code="service.unavailable", message="A dependency is not answering.", details=checks)
        return Response(body, status_code=200 if ready else 503)
