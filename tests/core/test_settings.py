import pytest

from backend.core.db import engine_from_url
from backend.settings import Settings, SettingsError

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
