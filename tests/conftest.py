"""The suite runs in two modes, chosen by scripts/test through the environment:
embedded (TEST_DATABASE_URL=sqlite:///..., no TEST_REDIS_URL) and scale-out
(TEST_DATABASE_URL=postgresql://..., TEST_REDIS_URL=redis://...). The environment
is set here, before anything imports `backend`.
"""

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_TMP = tempfile.mkdtemp(prefix="mall-tests-")
os.environ["DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{_TMP}/test.sqlite3"
if os.environ.get("TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
else:
    os.environ.pop("REDIS_URL", None)
os.environ["SECRET_KEY"] = secrets.token_urlsafe(48)
os.environ["VAR_DIR"] = _TMP
os.environ["PAYMENT_PROVIDER"] = "sandbox"
os.environ["APP_ENV"] = "development"
os.environ["PICCOLO_CONF"] = "backend.piccolo_conf"
os.environ["SWEEP_INTERVAL_SECONDS"] = "0"  # tests sweep when they mean to
os.environ["ARGON2_TIME_COST"] = "1"  # a cheap hash keeps the suite fast; the algorithm is the same
os.environ["ARGON2_MEMORY_KIB"] = "1024"

from collections.abc import AsyncIterator, Callable, Iterator  # noqa: E402
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from litestar import Litestar  # noqa: E402
from piccolo.engine.postgres import PostgresEngine  # noqa: E402
from piccolo.querystring import QueryString  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from backend.app import create_app  # noqa: E402
from backend.cli import migrate  # noqa: E402
from backend.core.db import close_database, get_engine  # noqa: E402
from backend.core.recent import Recent  # noqa: E402
from backend.piccolo_app import TABLES  # noqa: E402
from backend.sandbox.keys import load_sandbox_keys  # noqa: E402
from backend.sandbox.notify import SandboxNotifier  # noqa: E402
from backend.sandbox.provider import SandboxProvider  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.stores import service as stores  # noqa: E402
from backend.stores.schemas import StaffCreate, StoreCreate  # noqa: E402
from tests.servers import RedisProcess  # noqa: E402

SCALE_OUT = bool(os.environ.get("TEST_REDIS_URL"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Mutation testing (mutmut) runs many sessions at once in processes forked from one that imported this
    module: each takes a database of its own (no engine exists before a session opens one)."""
    if os.environ.get("MUTANT_UNDER_TEST") and not os.environ.get("TEST_DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='mall-mutant-')}/test.sqlite3"


PASSWORD = "correct-horse-battery"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def migrated_database() -> None:
    """Apply every migration once to the fresh database: proof that they apply."""

    async def run() -> None:
        await migrate(Settings.from_env())
        await close_database()

    asyncio.run(run())


_sequences: list[str] = []  # every table's id sequence, on PostgreSQL


async def wipe_tables() -> None:
    """Every table emptied, children first, and (on PostgreSQL) every id sequence started again: DELETE and setval
    take a few milliseconds where TRUNCATE, which makes every table and index anew, takes a fifth of a second."""
    engine = get_engine()
    if isinstance(engine, PostgresEngine):
        if not _sequences:
            rows = await engine.run_querystring(
                QueryString(
                    "SELECT pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq "
                    "FROM information_schema.columns WHERE table_schema = 'public' AND column_default LIKE 'nextval%' "
                    "AND table_name <> 'migration'"  # the migrations' own record is kept, and numbered on
                )
            )
            _sequences.extend(row["seq"] for row in rows)
        async with engine.transaction():
            for table in reversed(TABLES):
                await engine.run_ddl(f'DELETE FROM "{table._meta.tablename}"')
            await engine.run_ddl("SELECT " + ", ".join(f"setval('{seq}', 1, false)" for seq in _sequences))
    else:
        for table in reversed(TABLES):
            await engine.run_ddl(f'DELETE FROM "{table._meta.tablename}"')


@asynccontextmanager
async def without_constraint(table: type, name: str) -> AsyncIterator[None]:
    """The database without one of its constraints, so that a test shows the code's own guard holds the
    invariant by itself. The constraint comes back afterwards (over emptied tables: a broken guard may
    have left rows that break it)."""
    constraint = next(c for c in table._meta.constraints if c._meta.name == name)
    engine = get_engine()
    await engine.run_ddl(f'ALTER TABLE "{table._meta.tablename}" DROP CONSTRAINT {name}')
    try:
        yield
    finally:
        await wipe_tables()
        await engine.run_ddl(f'ALTER TABLE "{table._meta.tablename}" ADD CONSTRAINT {name} {constraint.ddl}')


@pytest.fixture(autouse=True)
async def clean_state() -> AsyncIterator[None]:
    await wipe_tables()
    Recent.forget_everything()  # ids start again in the wiped database
    if SCALE_OUT:
        redis = Redis.from_url(os.environ["TEST_REDIS_URL"])
        await redis.flushdb()
        await redis.aclose()
    yield
    await close_database()


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture
def wechatpay_credentials(tmp_path_factory) -> dict[str, object]:
    """Settings overrides for PAYMENT_PROVIDER=wechatpay with fresh merchant and platform keys (no server)."""
    folder = tmp_path_factory.mktemp("wechatpay")
    keys = []
    for name in ("apiclient_key.pem", "platform_key.pem"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (folder / name).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        keys.append(key)
    (folder / "platform_pub.pem").write_bytes(
        keys[1].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "payment_provider": "wechatpay",
        "wechatpay_mchid": "1230000109",
        "wechatpay_serial_no": "1" * 40,
        "wechatpay_private_key_path": folder / "apiclient_key.pem",
        "wechatpay_platform_keys": (("PUB_KEY_ID_01", folder / "platform_pub.pem"),),
        "wechatpay_api_v3_key": "k" * 32,
        "wechatpay_api_base": "http://127.0.0.1:9",
        "payment_notify_url": "https://shop.example.com/api/v1/payments/wechat/notify",
    }


@pytest.fixture
def notifier(settings: Settings) -> SandboxNotifier:
    """WeChat Pay's side of a notification: the sandbox's platform and APIv3 keys, delivering nothing by itself."""
    return SandboxNotifier(load_sandbox_keys(settings.var_dir, settings.secret_key), url="")


@pytest.fixture
def sandbox_provider(settings: Settings) -> SandboxProvider:
    """The sandbox WeChat Pay, with the same keys the app under test loads."""
    return SandboxProvider(load_sandbox_keys(settings.var_dir, settings.secret_key), appid=settings.wechat_app_id)


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and requests on the test's own event loop, as a server would.

    (Litestar's AsyncTestClient runs the lifespan on a portal thread's loop: the
    database pool would then be shared across two loops.)
    """
    started, stopping = asyncio.Event(), asyncio.Event()

    async def hold_lifespan() -> None:  # entered and exited in one task, as anyio requires
        async with app.lifespan():
            started.set()
            await stopping.wait()

    lifespan = asyncio.create_task(hold_lifespan())
    await asyncio.wait([lifespan, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if lifespan.done():
        lifespan.result()  # startup failed: raise its error here
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        stopping.set()
        await lifespan


@pytest.fixture
def make_client() -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """A client for an app built with these settings; use as `async with make_client(settings) as client`. Its
    OpenAPI document is not built (half of what building an app costs) unless `document=True`."""

    def build(
        settings: Settings | None = None, *, document: bool = False, **overrides: object
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = replace(settings or Settings.from_env(), **overrides)
        return serve(create_app(settings, in_process_notifications=True, build_document=document))

    return build


@pytest.fixture
async def client(make_client) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as client:
        yield client


@pytest.fixture
async def documented_client(make_client) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that serves its OpenAPI document, built and checked as a deployment's is."""
    async with make_client(document=True) as client:
        yield client


@pytest.fixture
async def demo() -> dict[str, int]:
    """Three stores, an HQ admin, a manager of S001 and one cashier each for S001 and S002."""
    ids = {}
    for code in ("S001", "S002", "S003"):
        ids[code] = (await stores.create_store(StoreCreate(code=code, name=f"Store {code}", points_per_yuan=2))).id
    for username, role, codes in (
        ("hq", "hq_admin", []),
        ("manager1", "store_manager", ["S001"]),
        ("cashier1", "cashier", ["S001"]),
        ("cashier2", "cashier", ["S002"]),
    ):
        row = await stores.create_staff(
            StaffCreate(username=username, password=PASSWORD, role=role, store_ids=[ids[c] for c in codes])
        )
        ids[username] = row.id
    return ids


async def staff_login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/staff/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


async def member_login(client: httpx.AsyncClient, **wechat: str) -> dict:
    """Log a shopper in through the sandbox, as the mini-program does; answers the login body."""
    code = await client.post("/api/v1/sandbox/wechat/login-codes", json=wechat)
    assert code.status_code == 201, code.text
    response = await client.post("/api/v1/auth/miniprogram/login", json={"code": code.json()["code"]})
    assert response.status_code == 200, response.text
    body = response.json()
    body["headers"] = {"Authorization": f"Bearer {body['accessToken']}"}
    return body


@dataclass
class ServedProcess:
    base: str  # http://127.0.0.1:PORT
    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)  # its stderr's lines, once it has stopped


@contextmanager
def served_process(port: int, **env: str) -> Iterator[ServedProcess]:
    """`python -m backend serve` in a process of its own, as a deployment runs it, until the block ends."""
    server = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve"],
        env={**os.environ, "PORT": str(port), "WORKERS": "1", **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = ServedProcess(f"http://127.0.0.1:{port}", server)
    try:
        for _ in range(300):
            try:
                httpx.get(f"{served.base}/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield served
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
        served.lines = err.splitlines()


@pytest.fixture
def redis_process(unused_tcp_port):
    """A real redis-server of the test's own, to stop, kill or pause."""
    process = RedisProcess(unused_tcp_port)
    process.start()
    yield process
    process.stop()


class Ticker:
    """Counts the turns a sleeping task gets while it runs: evidence that the event loop was not blocked."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.ticks = interval, 0

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.ticks += 1

    async def __aenter__(self) -> "Ticker":
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._task.cancel()
