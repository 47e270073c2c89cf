"""Settings for every role of the portal, read from the environment (see .env.example).

With nothing set, the portal runs on the embedded default: a SQLite file, an in-process Celery
broker and an in-process channel layer. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL
and Redis, the production topology.
"""

from __future__ import annotations

import sys
from pathlib import Path

from csp.constants import NONE, SELF
from django.utils.translation import gettext_lazy as _

from portal.env import (
    email_backend,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_str,
    parse_database_url,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = secret_key(debug=DEBUG, key_file=VAR_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "staff.apps.StaffAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "portal",
    "clusters",
    "clusters.web",
    "billing",
    "billing.web",
    "notifications",
    "staff",
]
# Daphne's app only turns ``manage.py runserver`` into an ASGI server (the portal itself runs
# under uvicorn: ``run_portal``). Importing it loads Twisted, some 40 MB in every process
# (watcher, workers, web), so it is installed for that command alone.
if sys.argv[1:2] == ["runserver"]:
    INSTALLED_APPS.insert(0, "daphne")

MIDDLEWARE = [
    "portal.metrics.middleware.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "portal.middleware.DatabaseOutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.SignedInDatabaseCheckMiddleware",
    "portal.languages.UserLanguageMiddleware",
    "portal.headers.PrivateResponsesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "staff.middleware.ImpersonationStandingMiddleware",
    "portal.middleware.RequestContextMiddleware",
]

ROOT_URLCONF = "portal.urls"
# WebSocket routes, collected by portal.routing in this order.
WEBSOCKET_ROUTES = ["clusters.web.routing", "staff.routing"]
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.navigation",
                "portal.context_processors.brand",
            ],
            "builtins": ["django.templatetags.i18n", "template_partials.templatetags.partials"],
        },
    }
]

# Connections are closed at the end of each request by default: under ASGI every request runs
# in a thread context of its own, so a connection kept for reuse is never reused and only
# piles up until PostgreSQL refuses more clients. DATABASE_POOL_SIZE reuses them instead.
DATABASES = {
    "default": parse_database_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"), base_dir=BASE_DIR,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
        pool_size=env_int("DATABASE_POOL_SIZE", 0, minimum=0),
    )
}
if str(DATABASES["default"]["ENGINE"]).endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    # Django's Redis cache, with one connection pool per process instead of one per request,
    # answering as an empty cache (the database behind it answers) while Redis is out of
    # reach (see portal/cache.py). Short timeouts: a cache that does not answer at once is
    # no faster than the database.
    CACHES = {"default": {"BACKEND": "portal.cache.ResilientRedisCache",
                          "LOCATION": env_str("CACHE_REDIS_URL", REDIS_URL),
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # No socket timeout (redis-py 8's default is 5 s). channels_redis waits on
            # BZPOPMIN for 5 s, which a read timeout of 5 s would cut, crashing every idle
            # WebSocket consumer. And with any socket timeout, redis-py sends each command
            # through asyncio.wait_for, which on Python 3.11 can swallow the cancellation of
            # the consumer's receive when a socket closes at shutdown: the receive then loops on
            # BZPOPMIN for ever and uvicorn never exits (bench/bench_sigterm.py). A connection
            # that died is noticed by TCP keepalive and by a PING before a command on a
            # connection idle for longer than health_check_interval; a Redis that is down
            # refuses at once (socket_connect_timeout bounds a connect that hangs).
            "CONFIG": {"hosts": [{"address": env_str("CHANNELS_REDIS_URL", REDIS_URL),
                                  "socket_timeout": None, "socket_connect_timeout": 2,
                                  "socket_keepalive": True, "health_check_interval": 15}],
                       "capacity": 1500},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    # kombu's Redis transport with one repair: a worker survives the broker going away
    # (portal/broker.py).
    CELERY_BROKER_TRANSPORT = "portal.broker:Transport"
    # Sessions read from Redis and written through to the database (one query fewer on every
    # signed-in request; a flushed cache loses no session). A cache that fails is a miss:
    # the database row carries the session (portal/sessions.py).
    SESSION_ENGINE = "portal.sessions"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"

CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A message a worker took and never acknowledged (the worker died) is delivered again after
# this many seconds; it must exceed OPERATION_LEASE_SECONDS.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600, minimum=1),
    "unacked_restore_interval": 1,
}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_REAUTHENTICATION_TIMEOUT = 15 * 60
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    # "key" is the account *and* the client's address (portal.account_adapter): failures from
    # one address lock that address out of the account, not the owner signing in elsewhere.
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}
ACCOUNT_ADAPTER = "portal.account_adapter.AccountAdapter"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Portal] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if not DEBUG else "http"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", env_str("BRAND_PRODUCT_NAME", "Kubernetes portal"))

# With DEBUG off, EMAIL_HOST (or an explicit EMAIL_BACKEND) is required: the console backend
# would print codes and invitation links to the log (see portal.env.email_backend).
EMAIL_BACKEND = email_backend(debug=DEBUG)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "portal@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("fr", _("French")), ("de", _("German")),
             ("it", _("Italian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Swiss conventions for each language (dates as de-CH, fr-CH, it-CH); amounts: portal.formatting.
FORMAT_MODULE_PATH = ["portal.formats"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/tabler/css", BASE_DIR / "node_modules/@tabler/core/dist/css"),
    ("vendor/tabler/js", BASE_DIR / "node_modules/@tabler/core/dist/js"),
    ("vendor/tabler/img", BASE_DIR / "node_modules/@tabler/core/dist/img"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", default=False) else None
)
# The proxies in front of the portal (addresses or networks). The client's address is the
# socket peer unless that peer is one of them; then X-Forwarded-For is followed, from the
# right, past every trusted proxy (portal.proxies). Empty: X-Forwarded-For is ignored.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every response: everything comes from the portal
# itself. No inline script or style anywhere: behaviour lives in static/portal/js (htmx is told
# by a meta tag neither to evaluate code from attributes nor to inject its indicator style),
# looks in static/portal/css. connect-src 'self' also covers the live pages' WebSockets: CSP
# Level 3 lets 'self' match ws:/wss: on the page's own host (the browser tests check it).
# data: images are Tabler's SVG icons inside its CSS and the QR code of the TOTP enrolment
# page. The API docs pages relax this for their bundled libraries (portal/api/docs.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
SILENCED_SYSTEM_CHECKS: list[str] = []

# Request bodies: a form post or an API body larger than this is refused with a 400 (the API's
# JSON parser reads no more either), so no page that shows input back can grow without bound.
# The largest legitimate body, a cluster spec with add-on values (64 KB each at most), is far
# smaller.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# The REST API (portal/api/): tokens or the browser session, problem-details errors, cursor
# pages, limits per token / user / address (429 with Retry-After).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["portal.api.parsers.BoundedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "portal.api.throttling.TokenRateThrottle",
        "portal.api.throttling.UserRateThrottle",
        "portal.api.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_token": env_str("API_RATE_TOKEN", "600/min"),
        "api_user": env_str("API_RATE_USER", "1200/min"),
        "api_anon": env_str("API_RATE_ANON", "60/min"),
    },
    "EXCEPTION_HANDLER": "portal.api.problems.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.CursorPage",
    "DEFAULT_SCHEMA_CLASS": "portal.api.schema.PortalAutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kubernetes portal API",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    "ENUM_NAME_OVERRIDES": {
        "OperationKindEnum": "clusters.models.Operation.Kind",
        "OperationStateEnum": "clusters.models.Operation.State",
        "StepStateEnum": "clusters.web.api.serializers.STEP_STATES",
        "ClusterPhaseEnum": "clusters.models.Cluster.Phase",
        "InvoiceKindEnum": "billing.models.Invoice.Kind",
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
        "RoleEnum": "portal.permissions.Role",
        "OidcUserRoleEnum": "clusters.web.api.serializers.OIDC_ROLE_CHOICES",
        "WebhookEventTypeEnum": "notifications.api.serializers.EVENT_TYPES",
        "WebhookStatusEnum": "notifications.api.serializers.STATUSES",
        "DeliveryStateEnum": "notifications.models.Delivery.State",
        "DeliveryOutcomeEnum": "notifications.models.DeliveryAttempt.Outcome",
    },
    # The webhooks the portal sends, one per event type (OpenAPI 3.1 `webhooks`).
    "WEBHOOKS": [f"notifications.api.webhooks.{name}" for name in (
        "CLUSTER_READY", "CLUSTER_DELETED", "OPERATION_SUCCEEDED", "OPERATION_FAILED",
        "BUDGET_THRESHOLD", "INVOICE_FINALIZED", "VERSION_END_OF_LIFE_SOON",
        "MAINTENANCE_SCHEDULED", "WEBHOOK_TEST", "CLUSTER_HIBERNATED", "CLUSTER_WOKEN",
        "CLUSTER_EXPIRING")],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.strict_request_bodies",
        "portal.api.schema.describe_api",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "displayRequestDuration": True},
    "REDOC_DIST": "SIDECAR",
    # System fonts: the page loads nothing from outside the portal (templates/drf_spectacular).
    "REDOC_UI_SETTINGS": {"theme": {"typography": {
        "fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
        "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"},
    }}},
}

# The management cluster. KUBECONFIG names a kubeconfig file; PLATFORM_IN_CLUSTER uses the
# pod's service account instead. The embedded default points at the simulator's kubeconfig.
PLATFORM_KUBECONFIG = env_str("KUBECONFIG", str(VAR_DIR / "platform.kubeconfig"))
PLATFORM_IN_CLUSTER = env_bool("PLATFORM_IN_CLUSTER", default=False)
PLATFORM_KUBECONFIG_KEY = env_str("PLATFORM_KUBECONFIG_KEY", "admin.conf")
PLATFORM_REQUEST_TIMEOUT = env_int("PLATFORM_REQUEST_TIMEOUT", 10, minimum=1)
PLATFORM_OPERATION_TIMEOUT = env_int("PLATFORM_OPERATION_TIMEOUT", 20 * 60, minimum=60)
# How long what the platform offers a tenant (its Option API: instance types, GPUs and storage
# classes, v1.6) is kept before it is read again; a failed read falls back to the bundled
# catalogues for a fraction of it.
PLATFORM_OPTIONS_SECONDS = env_int("PLATFORM_OPTIONS_SECONDS", 60, minimum=5)
# How long the tenant's quota on the platform (its ResourceQuotas) is kept before it is read again.
PLATFORM_QUOTA_SECONDS = env_int("PLATFORM_QUOTA_SECONDS", 30, minimum=5)
# The platform's root host (Cozystack's publishing host). A tenant's domain is <slug>.<root> and
# a cluster's default API host kubernetes-<name>.<slug>.<root>; custom API hosts under the root
# are refused. The simulator serves example.org; `check --deploy` warns when it is unset.
PLATFORM_ROOT_HOST = env_str("PLATFORM_ROOT_HOST", "example.org" if DEBUG else "")
# The platform's load balancers speak the PROXY protocol to tenant ingress controllers: then
# (and only then) tenants are offered the ouroboros add-on, which fixes hairpin traffic.
PLATFORM_PROXY_PROTOCOL = env_bool("PLATFORM_PROXY_PROTOCOL", default=False)

# Platform-wide default quota for a tenant; staff override it per tenant.
TENANT_DEFAULT_QUOTA = {
    "clusters": env_int("TENANT_QUOTA_CLUSTERS", 10, minimum=0),
    "vcpu": env_int("TENANT_QUOTA_VCPU", 256, minimum=0),
    "memory_gib": env_int("TENANT_QUOTA_MEMORY_GIB", 1024, minimum=0),
    "gpus": env_int("TENANT_QUOTA_GPUS", 4, minimum=0),
}
INVITATION_TTL_HOURS = env_int("INVITATION_TTL_HOURS", 72, minimum=1)
# How long a link to set up a staff member's first authenticator app stays usable (portal.mfa).
MFA_ENROLMENT_LINK_TTL_HOURS = env_int("MFA_ENROLMENT_LINK_TTL_HOURS", 24, minimum=1)

# Branding (portal.branding): what staff leave empty in the admin's Branding comes from here.
# An empty product name is the portal's own, translated ("Kubernetes portal").
BRAND_PRODUCT_NAME = env_str("BRAND_PRODUCT_NAME")
BRAND_PRIMARY_COLOUR = env_str("BRAND_PRIMARY_COLOUR", "#066fd1")
BRAND_SUPPORT_EMAIL = env_str("BRAND_SUPPORT_EMAIL")
BRAND_SUPPORT_URL = env_str("BRAND_SUPPORT_URL")
BRAND_LEGAL_FOOTER = env_str("BRAND_LEGAL_FOOTER")
BRAND_MAX_IMAGE_BYTES = env_int("BRAND_MAX_IMAGE_BYTES", 256 * 1024, minimum=1024)

# Prometheus metrics (portal.metrics). The web role answers METRICS_PATH only to a request
# with "Authorization: Bearer <METRICS_TOKEN>" (unset: 404). The worker, beat and watcher
# serve theirs on METRICS_PORT (0: off) at METRICS_BIND. Several processes of a host add up
# their values through PROMETHEUS_MULTIPROC_DIR (an environment variable of the process).
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_PATH = env_str("METRICS_PATH", "/metrics")
METRICS_PORT = env_int("METRICS_PORT", 0, minimum=0)
METRICS_BIND = env_str("METRICS_BIND", "127.0.0.1")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# uvicorn's own loggers (its access log included) go through the same redacting JSON handler,
# with query strings cut off; this replaces the handlers uvicorn installs before Django starts.
# Their levels stay uvicorn's (--log-level).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "portal.logging.JsonFormatter"}},
    "filters": {"drop_query_strings": {"()": "portal.logging.DropQueryStrings"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                             "filters": ["drop_query_strings"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "uvicorn": {"handlers": ["console"], "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
        "django.db.backends": {"level": "INFO"},
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = True  # codes by email: no credential in any URL
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = True

# How often an operation in flight asks the platform how far it has come (seconds).
OPERATION_POLL_SECONDS = float(env_int("OPERATION_POLL_MS", 3000, minimum=50)) / 1000
# How long a worker holds an operation without renewing it; a killed worker's operation is
# taken over by another once this runs out (the relay loop looks every OUTBOX_RELAY_MS).
OPERATION_LEASE_SECONDS = env_int("OPERATION_LEASE_SECONDS", 20, minimum=1)
# How often the worker running an operation renews its lease (default: a quarter of it).
OPERATION_HEARTBEAT_SECONDS = env_int("OPERATION_HEARTBEAT_MS", OPERATION_LEASE_SECONDS * 250,
                                      minimum=50) / 1000
# The outbox (clusters.outbox): each entry is handed to the broker right after its commit; the
# relay loop (a thread of every worker) hands over what that missed, once an entry is this old,
# and looks this often; a broker that refuses is tried again with backoff up to the last.
OUTBOX_GRACE_SECONDS = env_int("OUTBOX_GRACE_MS", 2000, minimum=0) / 1000
OUTBOX_RELAY_SECONDS = env_int("OUTBOX_RELAY_MS", 1000, minimum=50) / 1000
OUTBOX_MAX_BACKOFF_SECONDS = env_int("OUTBOX_MAX_BACKOFF_MS", 5000, minimum=50) / 1000
# Every Celery worker runs the relay loop as a thread; off, run `manage.py relay_outbox` instead.
OUTBOX_RELAY_IN_WORKERS = env_bool("OUTBOX_RELAY_IN_WORKERS", default=True)
# Sent outbox entries are kept this long (when and how often each was handed over).
OUTBOX_KEEP_SENT_SECONDS = env_int("OUTBOX_KEEP_SENT_SECONDS", 3600, minimum=0)
CELERY_BEAT_SCHEDULE = {
    "clusters-resync": {"task": "clusters.resync", "schedule": 60.0},
    "clusters-sweep-access": {"task": "clusters.sweep_access", "schedule": 600.0},
    "clusters-plan-lifecycle": {"task": "clusters.plan_lifecycle", "schedule": 60.0},
    "billing-finalize-invoices": {"task": "billing.finalize_invoices", "schedule": 3600.0},
    "billing-check-budgets": {"task": "billing.check_budgets", "schedule": 600.0},
    "billing-reconcile-ledger": {"task": "billing.reconcile_ledger", "schedule": 3600.0},
    "clusters-check-end-of-life": {"task": "clusters.check_end_of_life", "schedule": 6 * 3600.0},
    "notifications-dispatch-due": {"task": "notifications.dispatch_due", "schedule": 30.0},
    "notifications-cleanup": {"task": "notifications.cleanup", "schedule": 24 * 3600.0},
}

# Billing (CHF). Invoices of a month are finalized once it ended this many days ago (late
# observations still count); beat looks back this many months for invoices still due.
BILLING_FINALIZE_GRACE_DAYS = env_int("BILLING_FINALIZE_GRACE_DAYS", 2, minimum=0)
BILLING_FINALIZE_LOOKBACK_MONTHS = env_int("BILLING_FINALIZE_LOOKBACK_MONTHS", 3, minimum=1)
BILLING_PAYMENT_TERMS_DAYS = env_int("BILLING_PAYMENT_TERMS_DAYS", 30, minimum=0)
# The issuer block of invoices; address lines separated by "|".
BILLING_ISSUER_NAME = env_str("BILLING_ISSUER_NAME", "Example Cloud SA")
BILLING_ISSUER_ADDRESS = env_str("BILLING_ISSUER_ADDRESS",
                                 "Rue de l'Exemple 1|1200 Genève|Switzerland")
BILLING_ISSUER_VAT_ID = env_str("BILLING_ISSUER_VAT_ID", "CHE-000.000.000 MWST")
BILLING_ISSUER_IBAN = env_str("BILLING_ISSUER_IBAN", "")
# The Swiss QR-bill payment part of finalized CHF invoices (billing.payment_slip): the IBAN
# above (a QR-IBAN gives QR references, any other IBAN ISO 11649 creditor references) and the
# creditor's structured address. No IBAN: no payment part.
BILLING_CREDITOR_STREET = env_str("BILLING_CREDITOR_STREET", "Rue de l'Exemple")
BILLING_CREDITOR_HOUSE_NUMBER = env_str("BILLING_CREDITOR_HOUSE_NUMBER", "1")
BILLING_CREDITOR_POSTCODE = env_str("BILLING_CREDITOR_POSTCODE", "1200")
BILLING_CREDITOR_CITY = env_str("BILLING_CREDITOR_CITY", "Genève")
BILLING_CREDITOR_COUNTRY = env_str("BILLING_CREDITOR_COUNTRY", "CH")
# Digits some banks put first in QR references (a customer id they assign); usually empty.
BILLING_QRR_PREFIX = env_str("BILLING_QRR_PREFIX", "")

# Notifications and webhooks (notifications/). A delivery is retried for WEBHOOK_RETRY_HOURS;
# an endpoint failing for WEBHOOK_DISABLE_AFTER_HOURS without a success is disabled and its
# tenant's owners emailed; deliveries and their attempts are kept WEBHOOK_LOG_DAYS.
WEBHOOK_RETRY_HOURS = env_int("WEBHOOK_RETRY_HOURS", 24, minimum=1)
WEBHOOK_DISABLE_AFTER_HOURS = env_int("WEBHOOK_DISABLE_AFTER_HOURS", 24, minimum=1)
WEBHOOK_LOG_DAYS = env_int("WEBHOOK_LOG_DAYS", 30, minimum=1)
WEBHOOK_CONNECT_TIMEOUT = env_int("WEBHOOK_CONNECT_TIMEOUT", 5, minimum=1)
WEBHOOK_READ_TIMEOUT = env_int("WEBHOOK_READ_TIMEOUT", 10, minimum=1)
# Extra CA certificates (a PEM file) trusted for webhook receivers, beside the system's.
WEBHOOK_CA_FILE = env_str("WEBHOOK_CA_FILE")
# Tell tenants this many days before a version's end of life (clusters.check_end_of_life).
END_OF_LIFE_NOTICE_DAYS = env_int("END_OF_LIFE_NOTICE_DAYS", 30, minimum=0)
# Maintenance windows (clusters.maintenance): the platform's default window of a cluster whose
# tenant set none ("weekdays start duration-minutes time-zone", weekdays 0 Monday … 6 Sunday),
# and staff's defaults for automatic upgrades until they change them in the admin.
MAINTENANCE_DEFAULT_WINDOW = env_str("MAINTENANCE_DEFAULT_WINDOW", "6 02:00 240 Europe/Zurich")
MAINTENANCE_MAX_CONCURRENT_UPGRADES = env_int("MAINTENANCE_MAX_CONCURRENT_UPGRADES", 10,
                                              minimum=1)
MAINTENANCE_END_OF_LIFE_LEAD_DAYS = env_int("MAINTENANCE_END_OF_LIFE_LEAD_DAYS", 30, minimum=1)
MAINTENANCE_ANNOUNCE_DAYS = env_int("MAINTENANCE_ANNOUNCE_DAYS", 7, minimum=0)
# Fernet keys that seal stored secrets (portal/encryption.py): the first seals, all unseal.
# Empty: keys derived from SECRET_KEY and SECRET_KEY_FALLBACKS.
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS")
# Only the test settings may set this (portal/settings_test.py); webhooks go to public
# addresses only, whatever else is configured.
TESTING = False
WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = False
