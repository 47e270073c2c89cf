"""Settings of every role in the chaos suite: the portal's own, as in production (DEBUG off,
so a failure is the HTML or problem page a person would get, not a debug page), with what a
throwaway deployment on loopback needs: no collectstatic (static files served from the
finders, as the test settings do), no TLS redirect or secure cookies, email kept in memory.

Everything else comes from the environment the suite gives each process (DATABASE_URL,
REDIS_URL, CACHE_REDIS_URL, CHANNELS_REDIS_URL, KUBECONFIG, ...), read by portal.settings.
"""

from __future__ import annotations

import os

os.environ["DEBUG"] = "false"
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

from portal.settings_test import *  # noqa: E402,F403

DEBUG = False
