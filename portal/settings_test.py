"""Test overrides: no collectstatic, fast hashing, and a stable test database name."""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("SECRET_KEY", "test-" + "x" * 60)

from portal.env import env_bool, env_str  # noqa: E402
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

# The test settings, and the one place webhooks may reach a private address: a test's local
# receiver, when it asks (processes it starts get the variable in their environment).
TESTING = True
WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS")
# Processes started by a test (a Celery worker) write their emails here for the test to read.
if env_str("TEST_EMAIL_DIR"):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = env_str("TEST_EMAIL_DIR")
# Processes started by a test session keep their cache keys under the session's own prefix:
# the suite's databases are created anew each session with the same primary keys, and what an
# earlier session's processes cached for tenant 1 or cluster 3 must never answer for this one's.
if env_str("TEST_CACHE_PREFIX") and "default" in CACHES:  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = env_str("TEST_CACHE_PREFIX")  # noqa: F405
