"""Settings read from the environment fail fast, naming the variable that is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.env import (
    CONSOLE_EMAIL_BACKEND,
    SMTP_EMAIL_BACKEND,
    ImproperEnvironment,
    email_backend,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_str,
    parse_database_url,
    secret_key,
)

BASE = Path("/srv/portal")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "expected"), [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True), (" true ", True),
    ("false", False), ("0", False), ("no", False), ("off", False), ("", False),
])
def test_booleans_are_read_in_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("PORTAL_FLAG", raw)
    assert env_bool("PORTAL_FLAG", default=not expected) is expected


def test_an_unset_boolean_takes_its_default(monkeypatch):
    monkeypatch.delenv("PORTAL_FLAG", raising=False)
    assert env_bool("PORTAL_FLAG", default=True) is True


@pytest.mark.parametrize("raw", ["maybe", "treu", "2", "enabled"])
def test_a_bad_boolean_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("DEBUG", raw)
    with pytest.raises(ImproperEnvironment, match=rf"^DEBUG must be a boolean .*{raw!r}"):
        env_bool("DEBUG")


def test_integers_are_read_and_defaulted(monkeypatch):
    monkeypatch.setenv("EMAIL_PORT", "2525")
    assert env_int("EMAIL_PORT", 587) == 2525
    monkeypatch.setenv("EMAIL_PORT", "")
    assert env_int("EMAIL_PORT", 587) == 587
    monkeypatch.delenv("EMAIL_PORT")
    assert env_int("EMAIL_PORT", 587) == 587


@pytest.mark.parametrize("raw", ["five", "5.0", "0x10", "1e3"])
def test_a_bad_integer_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("EMAIL_PORT", raw)
    with pytest.raises(ImproperEnvironment, match=r"^EMAIL_PORT must be an integer"):
        env_int("EMAIL_PORT", 587)


def test_an_integer_below_its_minimum_names_the_variable(monkeypatch):
    monkeypatch.setenv("EMAIL_PORT", "0")
    with pytest.raises(ImproperEnvironment, match=r"^EMAIL_PORT must be at least 1, got 0"):
        env_int("EMAIL_PORT", 587, minimum=1)


def test_lists_are_split_on_commas_and_trimmed(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " portal.example.ch, ,api.example.ch ")
    assert env_list("ALLOWED_HOSTS") == ["portal.example.ch", "api.example.ch"]
    monkeypatch.delenv("ALLOWED_HOSTS")
    assert env_list("ALLOWED_HOSTS", ["localhost"]) == ["localhost"]


def test_strings_default_when_unset(monkeypatch):
    monkeypatch.delenv("SITE_URL", raising=False)
    assert env_str("SITE_URL", "http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_networks_are_read_as_addresses_and_cidrs(monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", " 10.0.0.5, 10.8.0.0/16 ,2001:db8::/32,10.9.0.1/16")
    assert env_networks("TRUSTED_PROXIES") == [
        "10.0.0.5/32", "10.8.0.0/16", "2001:db8::/32", "10.9.0.0/16"]
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert env_networks("TRUSTED_PROXIES") == []


@pytest.mark.parametrize("raw", ["*", "proxy.internal", "10.0.0.0/33", "1", "10.0.0.5:80"])
def test_a_bad_network_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("TRUSTED_PROXIES", f"10.0.0.1,{raw}")
    with pytest.raises(ImproperEnvironment,
                       match=rf"^TRUSTED_PROXIES must list IP addresses or networks .*{raw!r}"):
        env_networks("TRUSTED_PROXIES")


# -- EMAIL_BACKEND -----------------------------------------------------------------------------

@pytest.fixture
def no_email_env(monkeypatch):
    monkeypatch.delenv("EMAIL_BACKEND", raising=False)
    monkeypatch.delenv("EMAIL_HOST", raising=False)
    return monkeypatch


def test_in_development_emails_are_printed_to_the_console(no_email_env):
    assert email_backend(debug=True) == CONSOLE_EMAIL_BACKEND


def test_in_production_emails_go_through_the_smtp_host(no_email_env):
    no_email_env.setenv("EMAIL_HOST", "smtp.example.ch")
    assert email_backend(debug=False) == SMTP_EMAIL_BACKEND


def test_in_production_the_console_is_never_chosen_by_default(no_email_env):
    with pytest.raises(ImproperEnvironment,
                       match=r"^EMAIL_HOST is required when DEBUG is off \(or set EMAIL_BACKEND"):
        email_backend(debug=False)


@pytest.mark.parametrize("debug", [True, False])
def test_an_explicit_email_backend_is_used_as_is(no_email_env, debug):
    no_email_env.setenv("EMAIL_BACKEND", "django.core.mail.backends.dummy.EmailBackend")
    assert email_backend(debug=debug) == "django.core.mail.backends.dummy.EmailBackend"


# -- DATABASE_URL ------------------------------------------------------------------------------

def test_a_postgres_url_becomes_django_settings():
    config = parse_database_url(
        "postgres://portal:s%40cret@db.internal:6432/portal_prod?sslmode=require", base_dir=BASE)
    assert config == {
        "ENGINE": "django.db.backends.postgresql", "NAME": "portal_prod", "USER": "portal",
        "PASSWORD": "s@cret", "HOST": "db.internal", "PORT": "6432",
        "OPTIONS": {"sslmode": "require"}, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": True,
    }


def test_connections_are_kept_only_when_asked():
    kept = parse_database_url("postgres://u@h/db", base_dir=BASE, conn_max_age=60)
    assert kept["CONN_MAX_AGE"] == 60 and "pool" not in kept["OPTIONS"]


def test_a_pool_size_gives_each_process_a_bounded_connection_pool():
    config = parse_database_url("postgres://u@h/db?sslmode=require", base_dir=BASE,
                                pool_size=8)
    assert config["CONN_MAX_AGE"] == 0
    assert config["OPTIONS"] == {"sslmode": "require",
                                 "pool": {"min_size": 1, "max_size": 8, "timeout": 10}}


def test_a_pool_and_kept_connections_exclude_each_other():
    with pytest.raises(ImproperEnvironment, match="DATABASE_POOL_SIZE and DATABASE_CONN_MAX_AGE"):
        parse_database_url("postgres://u@h/db", base_dir=BASE, conn_max_age=60, pool_size=8)


def test_a_pool_needs_postgres():
    with pytest.raises(ImproperEnvironment, match="DATABASE_POOL_SIZE needs a postgres://"):
        parse_database_url("sqlite:///var/portal.sqlite3", base_dir=BASE, pool_size=8)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "pgsql"])
def test_every_postgres_scheme_spelling_is_accepted(scheme):
    config = parse_database_url(f"{scheme}://u@h/db", base_dir=BASE)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("h", "", "db")


def test_a_postgres_url_without_a_database_is_refused():
    with pytest.raises(ImproperEnvironment, match=r"^DATABASE_URL must name a database"):
        parse_database_url("postgres://u@h:5432/", base_dir=BASE)


def test_an_absolute_sqlite_path():
    config = parse_database_url("sqlite:////var/lib/portal/db.sqlite3", base_dir=BASE)
    assert config == {"ENGINE": "django.db.backends.sqlite3",
                      "NAME": "/var/lib/portal/db.sqlite3"}


def test_a_relative_sqlite_path_is_under_the_project():
    config = parse_database_url("sqlite:///var/portal.sqlite3", base_dir=BASE)
    assert config["NAME"] == "/srv/portal/var/portal.sqlite3"


def test_a_sqlite_url_without_a_path_is_refused():
    with pytest.raises(ImproperEnvironment, match=r"^DATABASE_URL sqlite:// needs a file path"):
        parse_database_url("sqlite://", base_dir=BASE)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "redis://h/0", "portal.sqlite3", "http://x/y"])
def test_an_unsupported_database_scheme_names_the_variable(url):
    with pytest.raises(ImproperEnvironment, match=r"^DATABASE_URL scheme .* is not supported"):
        parse_database_url(url, base_dir=BASE)


# -- SECRET_KEY --------------------------------------------------------------------------------

def test_the_secret_key_is_required_with_debug_off(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ImproperEnvironment, match=r"^SECRET_KEY is required when DEBUG is off"):
        secret_key(debug=False, key_file=tmp_path / "secret_key")
    assert not (tmp_path / "secret_key").exists()


def test_a_short_secret_key_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "x" * 49)
    with pytest.raises(ImproperEnvironment, match=r"^SECRET_KEY must be at least 50 characters"):
        secret_key(debug=True, key_file=tmp_path / "secret_key")


def test_a_secret_key_from_the_environment_is_used_as_is(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "k" * 50)
    assert secret_key(debug=False, key_file=tmp_path / "secret_key") == "k" * 50


def test_in_development_a_secret_key_is_generated_once_and_kept_private(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    key_file = tmp_path / "var" / "secret_key"

    first = secret_key(debug=True, key_file=key_file)
    second = secret_key(debug=True, key_file=key_file)

    assert first == second and len(first) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600


# -- the settings module as a whole ------------------------------------------------------------

def _load_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "EMAIL_PORT",
                          "EMAIL_HOST", "EMAIL_BACKEND", "DJANGO_SETTINGS_MODULE"}}
    return subprocess.run(
        [sys.executable, "-c", "import portal.settings"], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=60)


def test_the_settings_module_refuses_to_start_with_a_bad_variable(tmp_path):
    result = _load_settings({"DEBUG": "true", "PORTAL_VAR_DIR": str(tmp_path),
                             "EMAIL_PORT": "smtp"})
    assert result.returncode != 0
    assert "EMAIL_PORT must be an integer, got 'smtp'" in result.stderr


def test_the_settings_module_refuses_production_without_a_secret_key(tmp_path):
    result = _load_settings({"DEBUG": "false", "PORTAL_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_the_settings_module_refuses_production_without_a_way_to_send_email(tmp_path):
    result = _load_settings({"DEBUG": "false", "PORTAL_VAR_DIR": str(tmp_path),
                             "SECRET_KEY": "k" * 60})
    assert result.returncode != 0
    assert "EMAIL_HOST is required when DEBUG is off" in result.stderr


def test_the_settings_module_starts_in_production_with_an_smtp_host(tmp_path):
    result = _load_settings({"DEBUG": "false", "PORTAL_VAR_DIR": str(tmp_path),
                             "SECRET_KEY": "k" * 60, "EMAIL_HOST": "smtp.example.ch"})
    assert result.returncode == 0, result.stderr
