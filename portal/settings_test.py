"""Test overrides: no collectstatic, fast hashing, and a stable test database name."""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("SECRET_KEY", "test-" + "x" * 60)

from portal.settings import *  # noqa: E402,F403
from portal.settings import DATABASES

STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SECURE_SSL_REDIRECT = False
ALLOWED_HOSTS = ["*"]
_db_name = str(DATABASES["default"]["NAME"]).rsplit("/", 1)[-1]
DATABASES["default"]["TEST"] = {"NAME": "test_" + _db_name}
