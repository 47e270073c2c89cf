"""`manage.py check --deploy` is clean with production-like settings, and warns when mail
would stay in the log or a file; production refuses to start with no way to send mail."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from portal.checks import check_email_backend

ROOT = Path(__file__).resolve().parents[2]


def _check(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE", "EMAIL_HOST",
                        "EMAIL_BACKEND")}
    env.update({"DJANGO_SETTINGS_MODULE": "portal.settings", **env_overrides})
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level",
                           "WARNING"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _production(tmp_path, **extra: str) -> dict[str, str]:
    return {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "portal.example.ch", "PORTAL_VAR_DIR": str(tmp_path), **extra}


def test_deploy_check_is_clean_with_production_settings(tmp_path):
    result = _check(_production(tmp_path, EMAIL_HOST="smtp.example.ch",
                                PLATFORM_ROOT_HOST="example.ch"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _check({"DEBUG": "false", "ALLOWED_HOSTS": "portal.example.ch",
                     "PORTAL_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


@pytest.mark.parametrize("backend", ["console", "filebased", "locmem"])
def test_deploy_check_warns_when_mail_would_stay_in_logs_or_files(tmp_path, backend):
    result = _check(_production(
        tmp_path, EMAIL_BACKEND=f"django.core.mail.backends.{backend}.EmailBackend"))
    assert result.returncode != 0
    assert "(portal.W001) EMAIL_BACKEND is django.core.mail.backends." in result.stderr
    assert "Set EMAIL_HOST (SMTP)" in result.stderr


def test_production_refuses_to_start_without_a_way_to_send_email(tmp_path):
    result = _check(_production(tmp_path))
    assert result.returncode != 0
    assert "EMAIL_HOST is required when DEBUG is off" in result.stderr


def test_the_email_check_is_silent_in_development(settings):
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert check_email_backend() == []


def test_the_email_check_accepts_smtp_in_production(settings):
    settings.DEBUG = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert check_email_backend() == []
