"""Typed readers for settings that come from the environment.

Each helper fails fast with a message naming the variable, so a typo in a deployment is an
error at start-up rather than a surprise at run time.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


class ImproperEnvironment(RuntimeError):
    """An environment variable is present but cannot be used."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperEnvironment(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperEnvironment(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperEnvironment(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[str]:
    """A comma-separated list of IP addresses and networks (``10.0.0.5, 10.8.0.0/16``)."""
    networks = []
    for item in env_list(name):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise ImproperEnvironment(
                f"{name} must list IP addresses or networks (e.g. 10.0.0.5,10.8.0.0/16), "
                f"got {item!r}") from exc
    return networks


def parse_database_url(url: str, *, base_dir: Path, conn_max_age: int = 0,
                       pool_size: int = 0) -> dict[str, object]:
    """Turn ``postgres://user:pass@host:port/name`` or ``sqlite:///path`` into Django settings.

    ``conn_max_age`` keeps a connection open that many seconds after a request (Django's
    ``CONN_MAX_AGE``); ``pool_size`` > 0 gives each process a pool of at most that many
    PostgreSQL connections instead (psycopg's pool; the two exclude each other).
    """
    parsed = urlparse(url)
    scheme = parsed.scheme
    if pool_size and conn_max_age:
        raise ImproperEnvironment(
            "DATABASE_POOL_SIZE and DATABASE_CONN_MAX_AGE exclude each other: set one of them")
    if pool_size and scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperEnvironment("DATABASE_POOL_SIZE needs a postgres:// DATABASE_URL")
    if scheme == "sqlite":
        raw_path = unquote(parsed.path)
        if raw_path.startswith("//"):  # sqlite:////absolute/path
            path = Path(raw_path[1:])
        elif raw_path in ("", "/"):
            raise ImproperEnvironment("DATABASE_URL sqlite:// needs a file path")
        else:
            path = Path(raw_path.lstrip("/"))
            if not path.is_absolute():
                path = base_dir / path
        config: dict[str, object] = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
        if conn_max_age:
            config["CONN_MAX_AGE"] = conn_max_age
        return config
    if scheme in ("postgres", "postgresql", "pgsql"):
        if not parsed.path.strip("/"):
            raise ImproperEnvironment("DATABASE_URL must name a database, e.g. .../portal")
        options: dict[str, object] = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        if pool_size:
            # A request waits up to ``timeout`` seconds for a free connection, then fails.
            options["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": 10}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperEnvironment(
        f"DATABASE_URL scheme {scheme!r} is not supported (use postgres:// or sqlite://)"
    )


def secret_key(*, debug: bool, key_file: Path) -> str:
    """The SECRET_KEY: from the environment, or for development a key kept in a local file."""
    value = os.environ.get("SECRET_KEY", "")
    if value:
        if len(value) < 50:
            raise ImproperEnvironment("SECRET_KEY must be at least 50 characters long")
        return value
    if not debug:
        raise ImproperEnvironment("SECRET_KEY is required when DEBUG is off")
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(64)
    key_file.write_text(value)
    key_file.chmod(0o600)
    return value


CONSOLE_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
SMTP_EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def email_backend(*, debug: bool) -> str:
    """The email backend: ``EMAIL_BACKEND`` when given, else the console in development and SMTP
    through ``EMAIL_HOST`` in production.

    With DEBUG off the console is never chosen by default: it would write sign-up codes,
    password-reset codes and invitation links to the web log.
    """
    explicit = os.environ.get("EMAIL_BACKEND", "").strip()
    if explicit:
        return explicit
    if debug:
        return CONSOLE_EMAIL_BACKEND
    if os.environ.get("EMAIL_HOST", "").strip():
        return SMTP_EMAIL_BACKEND
    raise ImproperEnvironment(
        "EMAIL_HOST is required when DEBUG is off (or set EMAIL_BACKEND explicitly): "
        "without it, emails with sign-in codes and invitation links would be printed to the log")
