import pytest

from backend.core.db import engine_from_url
from backend.settings import Settings, SettingsError, masked

BASE = {"DATABASE_URL": "sqlite:///var/x.sqlite3"}


@pytest.mark.parametrize("url", ["mysql://root@localhost/mall", "sqlite://relative.db", "nonsense", "redis://x/0"])
def test_unknown_database_url_fails_at_start_with_a_clear_message(url, tmp_path):
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        Settings.from_env({"DATABASE_URL": url, "VAR_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        engine_from_url(url)


def test_production_requires_a_secret_key(tmp_path):
    with pytest.raises(SettingsError, match="SECRET_KEY is required"):
        Settings.from_env({**BASE, "APP_ENV": "production", "VAR_DIR": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()


def test_embedded_secret_is_generated_once_and_kept(tmp_path):
    first = Settings.from_env({**BASE, "VAR_DIR": str(tmp_path)})
    second = Settings.from_env({**BASE, "VAR_DIR": str(tmp_path)})
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    other = Settings.from_env({**BASE, "VAR_DIR": str(tmp_path / "elsewhere")})
    assert other.secret_key != first.secret_key


def test_defaults_are_the_embedded_deployment(tmp_path):
    settings = Settings.from_env({"VAR_DIR": str(tmp_path)})
    assert settings.database_kind == "sqlite"
    assert settings.redis_url is None
    assert (settings.host, settings.port, settings.payment_provider) == ("127.0.0.1", 8000, "sandbox")
    assert "secret" not in repr(settings).lower() or settings.secret_key not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "eighty"), ("PAYMENT_PROVIDER", "paypal"), ("APP_ENV", "staging"), ("SECRET_KEY", "short")],
)
def test_bad_values_are_refused_by_name(name, value, tmp_path):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**BASE, "VAR_DIR": str(tmp_path), name: value})


def test_real_wechat_needs_app_credentials(tmp_path):
    with pytest.raises(SettingsError, match="WECHAT_APP_ID"):
        Settings.from_env({**BASE, "VAR_DIR": str(tmp_path), "PAYMENT_PROVIDER": "wechatpay"})


def _wechatpay(tmp_path) -> dict[str, str]:
    """Real WeChat Pay's settings (the files only need to exist for the settings to take them)."""
    (tmp_path / "key.pem").write_text("key")
    (tmp_path / "platform.pem").write_text("platform")
    return {
        "PAYMENT_PROVIDER": "wechatpay",
        "WECHAT_APP_ID": "wx1234567890",
        "WECHAT_APP_SECRET": "s" * 32,
        "WECHATPAY_MCHID": "1900000001",
        "WECHATPAY_SERIAL_NO": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "WECHATPAY_PRIVATE_KEY_PATH": str(tmp_path / "key.pem"),
        "WECHATPAY_PLATFORM_KEYS": f"PUB_KEY_ID_0119000000012025={tmp_path / 'platform.pem'}",
        "WECHATPAY_API_V3_KEY": "k" * 32,
        "PAYMENT_NOTIFY_URL": "https://shop.example.com/api/v1/payments/wechat/notify",
    }


PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": "p" * 40, "DATABASE_URL": "postgresql://app@db/mall"}


def test_production_runs_with_real_wechat_pay_and_without_debug(tmp_path):
    settings = Settings.from_env({**PRODUCTION, **_wechatpay(tmp_path), "VAR_DIR": str(tmp_path)})
    assert (settings.app_env, settings.payment_provider, settings.debug) == ("production", "wechatpay", False)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PAYMENT_PROVIDER": "sandbox"}, "PAYMENT_PROVIDER=sandbox"),
        ({"DEBUG": "true"}, "DEBUG"),
    ],
    ids=["sandbox", "debug"],
)
def test_production_refuses_the_sandbox_and_debug_mode(tmp_path, env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**PRODUCTION, **_wechatpay(tmp_path), "VAR_DIR": str(tmp_path), **env})
    Settings.from_env({**PRODUCTION, **_wechatpay(tmp_path), "VAR_DIR": str(tmp_path), **env, "APP_ENV": "development"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_URL": "sqlite:///var/x.sqlite3", "REDIS_URL": "redis://127.0.0.1:6379/0"}, "PostgreSQL"),
        ({"DATABASE_URL": "postgresql://app@db/mall"}, "REDIS_URL"),
    ],
    ids=["sqlite", "in-process-kv"],
)
def test_several_workers_need_the_shared_database_and_kv(tmp_path, env, named):
    with pytest.raises(SettingsError, match=f"WORKERS.*{named}"):
        Settings.from_env({"VAR_DIR": str(tmp_path), "WORKERS": "4", **env})
    assert Settings.from_env({"VAR_DIR": str(tmp_path), "WORKERS": "1", **env}).workers == 1
    shared = {"DATABASE_URL": "postgresql://app@db/mall", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert Settings.from_env({"VAR_DIR": str(tmp_path), "WORKERS": "4", **shared}).workers == 4


@pytest.mark.parametrize(
    ("name", "value"),
    [("ARGON2_TIME_COST", "abc"), ("ARGON2_TIME_COST", "0"), ("ARGON2_MEMORY_KIB", "1.5"), ("ARGON2_MEMORY_KIB", "8")],
)
def test_password_hashing_costs_are_checked_with_the_other_settings(tmp_path, name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**BASE, "VAR_DIR": str(tmp_path), name: value})


def test_masked_settings_show_no_secret(tmp_path):
    env = {**PRODUCTION, **_wechatpay(tmp_path), "VAR_DIR": str(tmp_path)}
    env["DATABASE_URL"], env["REDIS_URL"] = "postgresql://app:hunter2@db/mall", "redis://:redispass@cache:6379/0"
    shown = masked(Settings.from_env(env))
    text = repr(shown)
    for secret in ("p" * 40, "s" * 32, "k" * 32, "hunter2", "redispass"):
        assert secret not in text
    assert shown["secret_key"] == "(set, masked)" and shown["database_url"] == "postgresql://app:***@db/mall"
    assert shown["payment_provider"] == "wechatpay" and shown["workers"] == "1"
