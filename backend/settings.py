"""Settings from the environment; every knob is documented in the README."""

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql")
PAYMENT_PROVIDERS = ("sandbox", "wechatpay")
ARGON2_MIN_MEMORY_KIB = 1024
SECRET_SETTINGS = ("secret_key", "wechat_app_secret", "wechatpay_api_v3_key", "metrics_token")
N = TypeVar("N", int, float)


class SettingsError(Exception):
    """The environment does not describe a deployment we can start."""


def _number(env: dict[str, str], name: str, default: N, *, kind: type[N], minimum: N) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {'whole number' if kind is int else 'number'}, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _int(env: dict[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    return _number(env, name, default, kind=int, minimum=minimum)


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    return _number(env, name, default, kind=float, minimum=0.0)


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, the first by default."""
    raw = env.get(name) or choices[0]
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _metrics_token(env: dict[str, str]) -> str:
    token = env.get("METRICS_TOKEN", "")
    if token and len(token) < 16:
        raise SettingsError("METRICS_TOKEN must be at least 16 characters")
    return token


def _networks(env: dict[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Addresses or networks, separated by commas (none: nobody by address)."""
    raw = env.get(name)
    if raw is None:
        return default
    networks = []
    for entry in (part.strip() for part in raw.split(",")):
        if entry:
            try:
                networks.append(str(ipaddress.ip_network(entry, strict=False)))
            except ValueError:
                raise SettingsError(f"{name} must list IP addresses or networks, got {entry!r}") from None
    return tuple(networks)


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"POINTS_TIMEZONE {name!r} is not a known time zone (for example Asia/Shanghai)") from None
    return name


def check_database_url(url: str) -> str:
    """Return the URL's scheme family (`sqlite` or `postgres`), or fail with a clear message."""
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme not in DATABASE_SCHEMES:
        raise SettingsError(
            f"DATABASE_URL has an unsupported scheme {scheme!r}: use sqlite:///path/to/file.sqlite3 "
            "or postgresql://user@host:port/dbname"
        )
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
            raise SettingsError("DATABASE_URL for SQLite must look like sqlite:///relative/path or sqlite:////abs/path")
        return "sqlite"
    return "postgres"


def sqlite_path(url: str) -> Path:
    path = Path(url[len("sqlite:///") :])
    return path if path.is_absolute() else PROJECT_ROOT / path


def _secret_from_file(path: Path) -> str:
    """Generate the embedded deployment's secret once and keep it; concurrent workers agree on one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text().strip()
        if not secret:
            raise SettingsError(f"{path} is empty; delete it to generate a new secret key") from None
        return secret
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


@dataclass(frozen=True, kw_only=True)
class Settings:
    app_env: str = "development"
    var_dir: Path = PROJECT_ROOT / "var"
    database_url: str = "sqlite:///var/mall.sqlite3"
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    secret_key: str = field(default="", repr=False)
    payment_provider: str = "sandbox"
    wechat_app_id: str = "wx-sandbox-app"
    wechat_app_secret: str = field(default="", repr=False)
    wechat_api_base: str = "https://api.weixin.qq.com"
    member_token_ttl_seconds: int = 2 * 3600
    staff_token_ttl_seconds: int = 12 * 3600
    rate_limit_per_minute: int = 1200
    login_failure_limit: int = 5
    login_failure_limit_per_client: int = 30
    login_failure_window_seconds: int = 900
    max_body_bytes: int = 1_048_576
    db_pool_size: int = 20
    db_connect_timeout_seconds: float = 2.0
    db_pool_timeout_seconds: float = 10.0
    db_statement_timeout_seconds: float = 2.0
    db_heavy_statement_timeout_seconds: float = 120.0
    member_lookup_failure_limit: int = 10
    member_lookup_failure_window_seconds: int = 300
    checkout_max_amount_fen: int = 5_000_000
    redeem_points_per_yuan: int = 100
    micropay_query_interval_seconds: float = 5.0
    micropay_timeout_seconds: float = 30.0
    micropay_inline_wait_seconds: float = 8.0
    store_payment_close_after_seconds: float = 900.0
    store_payment_query_interval_seconds: float = 60.0
    refund_query_interval_seconds: float = 60.0
    notify_budget_seconds: float = 4.0
    payment_notify_url: str = ""
    wechatpay_mchid: str = ""
    wechatpay_serial_no: str = ""
    wechatpay_private_key_path: Path | None = None
    wechatpay_platform_keys: tuple[tuple[str, Path], ...] = ()
    wechatpay_api_v3_key: str = field(default="", repr=False)
    wechatpay_api_base: str = "https://api.mch.weixin.qq.com"
    points_expiry_months: int = 12
    points_timezone: str = "Asia/Shanghai"
    sweep_interval_seconds: float = 15.0
    share_base_url: str = "http://127.0.0.1:8000/api/v1/share/"
    poster_limit_per_minute: int = 20
    poster_plan_seconds: float = 2.0
    avatar_max_bytes: int = 2_000_000
    mall_payment_window_seconds: float = 900.0  # a mall order unpaid this long expires and gives its stock back
    access_log: bool = False
    log_format: str = "text"
    metrics_token: str = field(default="", repr=False)
    metrics_allow_from: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    debug: bool = False
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536

    @property
    def database_kind(self) -> str:
        return check_database_url(self.database_url)

    @property
    def sandbox_enabled(self) -> bool:
        return self.payment_provider == "sandbox"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        var_dir = Path(env.get("VAR_DIR") or PROJECT_ROOT / "var")
        app_env = env.get("APP_ENV", "development")
        if app_env not in ("development", "production"):
            raise SettingsError(f"APP_ENV must be development or production, got {app_env!r}")
        database_url = env.get("DATABASE_URL") or cls.database_url
        check_database_url(database_url)
        payment_provider = env.get("PAYMENT_PROVIDER") or "sandbox"
        if payment_provider not in PAYMENT_PROVIDERS:
            choices = ", ".join(PAYMENT_PROVIDERS)
            raise SettingsError(f"PAYMENT_PROVIDER must be one of {choices}, got {payment_provider!r}")
        secret_key = env.get("SECRET_KEY", "")
        if not secret_key:
            if app_env == "production":
                raise SettingsError("SECRET_KEY is required when APP_ENV=production")
            secret_key = _secret_from_file(var_dir / "secret_key")
        elif len(secret_key) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 characters")
        wechat_app_secret = env.get("WECHAT_APP_SECRET", "")
        if payment_provider != "sandbox" and not (env.get("WECHAT_APP_ID") and wechat_app_secret):
            raise SettingsError("WECHAT_APP_ID and WECHAT_APP_SECRET are required unless PAYMENT_PROVIDER=sandbox")
        wechatpay = _wechatpay(env) if payment_provider == "wechatpay" else {}
        host, port = env.get("HOST") or "127.0.0.1", _int(env, "PORT", 8000, minimum=1)
        notify_url = env.get("PAYMENT_NOTIFY_URL") or ""
        if payment_provider == "wechatpay" and not notify_url.startswith("https://"):
            raise SettingsError(
                "PAYMENT_NOTIFY_URL must be the public https:// address of /api/v1/payments/wechat/notify"
            )
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if not notify_url:  # the sandbox posts its notifications to this very server
            notify_url = f"http://{local}:{port}/api/v1/payments/wechat/notify"
        share_base_url = env.get("SHARE_BASE_URL") or f"http://{local}:{port}/api/v1/share/"
        if not share_base_url.startswith(("https://", "http://")):
            raise SettingsError("SHARE_BASE_URL must be an http(s) address the scene is appended to")
        settings = cls(
            app_env=app_env,
            var_dir=var_dir,
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            host=host,
            port=port,
            workers=_int(env, "WORKERS", 1, minimum=1),
            secret_key=secret_key,
            payment_provider=payment_provider,
            wechat_app_id=env.get("WECHAT_APP_ID") or cls.wechat_app_id,
            wechat_app_secret=wechat_app_secret,
            wechat_api_base=(env.get("WECHAT_API_BASE") or cls.wechat_api_base).rstrip("/"),
            member_token_ttl_seconds=_int(env, "MEMBER_TOKEN_TTL_SECONDS", cls.member_token_ttl_seconds, minimum=60),
            staff_token_ttl_seconds=_int(env, "STAFF_TOKEN_TTL_SECONDS", cls.staff_token_ttl_seconds, minimum=60),
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", cls.rate_limit_per_minute),
            login_failure_limit=_int(env, "LOGIN_FAILURE_LIMIT", cls.login_failure_limit, minimum=1),
            login_failure_limit_per_client=_int(
                env, "LOGIN_FAILURE_LIMIT_PER_CLIENT", cls.login_failure_limit_per_client, minimum=1
            ),
            login_failure_window_seconds=_int(
                env, "LOGIN_FAILURE_WINDOW_SECONDS", cls.login_failure_window_seconds, minimum=1
            ),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            db_pool_size=_int(env, "DB_POOL_SIZE", cls.db_pool_size, minimum=1),
            db_connect_timeout_seconds=_seconds(env, "DB_CONNECT_TIMEOUT_SECONDS", cls.db_connect_timeout_seconds),
            db_pool_timeout_seconds=_seconds(env, "DB_POOL_TIMEOUT_SECONDS", cls.db_pool_timeout_seconds),
            db_statement_timeout_seconds=_seconds(
                env, "DB_STATEMENT_TIMEOUT_SECONDS", cls.db_statement_timeout_seconds
            ),
            db_heavy_statement_timeout_seconds=_seconds(
                env, "DB_HEAVY_STATEMENT_TIMEOUT_SECONDS", cls.db_heavy_statement_timeout_seconds
            ),
            member_lookup_failure_limit=_int(
                env, "MEMBER_LOOKUP_FAILURE_LIMIT", cls.member_lookup_failure_limit, minimum=1
            ),
            member_lookup_failure_window_seconds=_int(
                env, "MEMBER_LOOKUP_FAILURE_WINDOW_SECONDS", cls.member_lookup_failure_window_seconds, minimum=1
            ),
            checkout_max_amount_fen=_int(env, "CHECKOUT_MAX_AMOUNT_FEN", cls.checkout_max_amount_fen, minimum=1),
            redeem_points_per_yuan=_int(env, "REDEEM_POINTS_PER_YUAN", cls.redeem_points_per_yuan, minimum=1),
            micropay_query_interval_seconds=_seconds(
                env, "MICROPAY_QUERY_INTERVAL_SECONDS", cls.micropay_query_interval_seconds
            ),
            micropay_timeout_seconds=_seconds(env, "MICROPAY_TIMEOUT_SECONDS", cls.micropay_timeout_seconds),
            micropay_inline_wait_seconds=_seconds(
                env, "MICROPAY_INLINE_WAIT_SECONDS", cls.micropay_inline_wait_seconds
            ),
            store_payment_close_after_seconds=_seconds(
                env, "STORE_PAYMENT_CLOSE_AFTER_SECONDS", cls.store_payment_close_after_seconds
            ),
            store_payment_query_interval_seconds=_seconds(
                env, "STORE_PAYMENT_QUERY_INTERVAL_SECONDS", cls.store_payment_query_interval_seconds
            ),
            refund_query_interval_seconds=_seconds(
                env, "REFUND_QUERY_INTERVAL_SECONDS", cls.refund_query_interval_seconds
            ),
            notify_budget_seconds=_seconds(env, "NOTIFY_BUDGET_SECONDS", cls.notify_budget_seconds),
            payment_notify_url=notify_url,
            **wechatpay,
            points_expiry_months=_int(env, "POINTS_EXPIRY_MONTHS", cls.points_expiry_months, minimum=1),
            points_timezone=_timezone(env.get("POINTS_TIMEZONE") or cls.points_timezone),
            sweep_interval_seconds=_seconds(env, "SWEEP_INTERVAL_SECONDS", cls.sweep_interval_seconds),
            share_base_url=share_base_url,
            poster_limit_per_minute=_int(env, "POSTER_LIMIT_PER_MINUTE", cls.poster_limit_per_minute, minimum=1),
            poster_plan_seconds=_seconds(env, "POSTER_PLAN_SECONDS", cls.poster_plan_seconds),
            avatar_max_bytes=_int(env, "AVATAR_MAX_BYTES", cls.avatar_max_bytes, minimum=10_000),
            mall_payment_window_seconds=_seconds(env, "MALL_PAYMENT_WINDOW_SECONDS", cls.mall_payment_window_seconds),
            access_log=_bool(env, "ACCESS_LOG", cls.access_log),
            log_format=_choice(env, "LOG_FORMAT", ("text", "json")),
            metrics_token=_metrics_token(env),
            metrics_allow_from=_networks(env, "METRICS_ALLOW_FROM", cls.metrics_allow_from),
            debug=_bool(env, "DEBUG", False),
            argon2_time_cost=_int(env, "ARGON2_TIME_COST", cls.argon2_time_cost, minimum=1),
            argon2_memory_kib=_int(env, "ARGON2_MEMORY_KIB", cls.argon2_memory_kib, minimum=ARGON2_MIN_MEMORY_KIB),
        )
        settings.check_deployment()
        return settings

    def check_deployment(self) -> None:
        """Refuse what cannot run as configured, naming the variable: several workers need the shared database
        and KV (each process would keep its own member codes, rate limits and write lock), and production
        never runs the sandbox (its endpoints mint paid orders and login codes for anyone) or debug mode."""
        if self.workers > 1 and self.database_kind == "sqlite":
            raise SettingsError("WORKERS above 1 needs PostgreSQL: set DATABASE_URL=postgresql://..., or WORKERS=1")
        if self.workers > 1 and self.redis_url is None:
            raise SettingsError("WORKERS above 1 needs Redis for the shared KV: set REDIS_URL, or WORKERS=1")
        if self.app_env == "production":
            if self.sandbox_enabled:
                raise SettingsError("PAYMENT_PROVIDER=sandbox is refused when APP_ENV=production: use wechatpay")
            if self.debug:
                raise SettingsError("DEBUG=true is refused when APP_ENV=production")


def _wechatpay(env: dict[str, str]) -> dict[str, object]:
    """The merchant's WeChat Pay credentials; every one is required with PAYMENT_PROVIDER=wechatpay."""
    missing = [
        name
        for name in (
            "WECHATPAY_MCHID",
            "WECHATPAY_SERIAL_NO",
            "WECHATPAY_PRIVATE_KEY_PATH",
            "WECHATPAY_PLATFORM_KEYS",
            "WECHATPAY_API_V3_KEY",
        )
        if not env.get(name)
    ]
    if missing:
        raise SettingsError(f"PAYMENT_PROVIDER=wechatpay needs {', '.join(missing)}")
    api_v3_key = env["WECHATPAY_API_V3_KEY"]
    if len(api_v3_key.encode()) != 32:
        raise SettingsError("WECHATPAY_API_V3_KEY must be the 32-character APIv3 key from the merchant platform")
    private_key = Path(env["WECHATPAY_PRIVATE_KEY_PATH"])
    if not private_key.is_file():
        raise SettingsError(f"WECHATPAY_PRIVATE_KEY_PATH {str(private_key)!r} is not a readable file")
    platform_keys = []
    for entry in env["WECHATPAY_PLATFORM_KEYS"].split(","):
        serial, _, path = entry.strip().partition("=")
        if not serial or not path or not Path(path).is_file():
            raise SettingsError(
                "WECHATPAY_PLATFORM_KEYS must list serial=path pairs, separated by commas, of "
                f"platform certificates or public keys that exist; got {entry.strip()!r}"
            )
        platform_keys.append((serial, Path(path)))
    return {
        "wechatpay_mchid": env["WECHATPAY_MCHID"],
        "wechatpay_serial_no": env["WECHATPAY_SERIAL_NO"],
        "wechatpay_private_key_path": private_key,
        "wechatpay_platform_keys": tuple(platform_keys),
        "wechatpay_api_v3_key": api_v3_key,
        "wechatpay_api_base": (env.get("WECHATPAY_API_BASE") or Settings.wechatpay_api_base).rstrip("/"),
    }


def masked(settings: Settings) -> dict[str, str]:
    """Every setting as it is in effect, secrets masked and the database and Redis passwords with them."""
    shown = {}
    for name, value in vars(settings).items():
        if name in SECRET_SETTINGS:
            text = "(set, masked)" if value else "(not set)"
        elif name in ("database_url", "redis_url") and value:
            parts = urlsplit(value)
            text = value.replace(f":{parts.password}@", ":***@") if parts.password else value
        else:
            text = str(value)
        shown[name] = text
    return shown


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
