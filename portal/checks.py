"""System checks of the portal's own settings (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

# Backends that keep mail on this side: the console writes it to the web log, a file backend
# to disk, local memory nowhere useful. Codes and invitation links must not end up there.
UNDELIVERED_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
}


@checks.register(checks.Tags.security, deploy=True)
def check_email_backend(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if settings.DEBUG or settings.EMAIL_BACKEND not in UNDELIVERED_EMAIL_BACKENDS:
        return []
    return [checks.Warning(
        f"EMAIL_BACKEND is {settings.EMAIL_BACKEND} with DEBUG off: sign-in codes, "
        "password-reset codes and invitation links are written to the log or a file instead "
        "of being sent.",
        hint="Set EMAIL_HOST (SMTP), or an EMAIL_BACKEND that delivers mail.",
        id="portal.W001",
    )]


METRICS_TOKEN_MIN_LENGTH = 24


@checks.register(checks.Tags.security, deploy=True)
def check_metrics_token(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    token = str(getattr(settings, "METRICS_TOKEN", "") or "")
    if not token or len(token) >= METRICS_TOKEN_MIN_LENGTH:
        return []
    return [checks.Warning(
        f"METRICS_TOKEN has {len(token)} characters: anyone who guesses it reads /metrics.",
        hint=f"Use at least {METRICS_TOKEN_MIN_LENGTH} random characters "
             "(python -c 'import secrets; print(secrets.token_urlsafe(32))').",
        id="portal.W002",
    )]
