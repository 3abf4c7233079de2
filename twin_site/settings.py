"""Twin settings: one module, every difference driven by the environment.

Works with no configuration at all (SQLite in ``var/``, Redis on 127.0.0.1:6379,
a generated development vault key); see README "Configuration" for the variables.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF

from .env import (
    default_active_runs,
    default_parked_memory_mb,
    env_bool,
    env_float,
    env_int,
    env_json,
    env_private_urls,
    env_secret,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("TWIN_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("TWIN_DEBUG", False)
# The fallback starts with "django-insecure-" so that `manage.py check --deploy` reports it.
SECRET_KEY = (
    env_secret("DJANGO_SECRET_KEY") or "django-insecure-twin-dev-key-change-me-in-production-0123456789"
)
ALLOWED_HOSTS = [h for h in env_str("TWIN_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("TWIN_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "twin_site.apps.TwinAdminConfig",  # django.contrib.admin, with auditors let in (read-only)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "tenants",
    "runs",
    "approvals",
    "vault",
    "webhooks",
    "skills",
]

MIDDLEWARE = [
    # First: an oversized API body is answered (413, JSON) before anything reads it.
    "twin_site.limits.ApiBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # After OTP: ends idle or too-old sessions, then holds a session that still owes its second
    # factor (or its enrollment) on the two-factor pages.
    "tenants.middleware.SessionLimitsMiddleware",
    "tenants.middleware.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into the login page's message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "twin_site.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "twin_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.dashboard",
            ],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'twin.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _default_db), conn_max_age=60)}
if env_str("TWIN_SERVER", "") == "asgi":
    # The web server (twin_site/asgi.py sets this): under ASGI each request's database work runs
    # in a thread of its own, so a connection kept for the next request is never reused — only
    # left open until the garbage collector finds it, dozens a process (docs/decisions.md).
    # Each request closes its connection; workers keep theirs for CONN_MAX_AGE.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker processes and the web server write concurrently: WAL lets readers go on while
    # one writes, IMMEDIATE takes the write lock up front (no upgrade deadlocks), and the
    # timeout waits for the lock instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
TWIN_SERVE_STATIC = env_bool("TWIN_SERVE_STATIC", True)
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"
# Screenshots use "default", session videos "videos": both local files unless TWIN_STORAGES
# (JSON, merged in) points them elsewhere, e.g. {"videos": {"BACKEND":
# "storages.backends.s3.S3Storage", "OPTIONS": {"bucket_name": "twin-videos"}}}.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "videos": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT / "videos"), "base_url": "/unused/"},
    },
    # Signed checkpoints of the audit heads (manage.py auditcheckpoint): outside the database on
    # purpose. In production point it at storage the database's writers cannot rewrite (e.g. a
    # bucket with object lock) through TWIN_STORAGES.
    "audit": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "audit"), "base_url": "/unused/"},
    },
}
STORAGES.update(env_json("TWIN_STORAGES", {}))
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# --- Sign-in: approver power sits behind it -------------------------------------------------
# django-axes checks every authenticate() (the dashboard's login and the admin's): after
# TWIN_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address (counted over
# the cool-off period), that pair is refused for TWIN_LOGIN_COOLOFF_SECONDS, even with the
# right password. The address is the one decisions record (twin_site.clients.client_ip).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("TWIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("TWIN_LOGIN_COOLOFF_SECONDS", 900, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "twin_site.clients.client_ip"
AXES_LOCKOUT_CALLABLE = "tenants.signin.locked_out"
AXES_RESET_ON_SUCCESS = True
# Failures are what count; a successful sign-in need not be logged in a second table.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
# Sessions end after TWIN_SESSION_IDLE_SECONDS without a request, TWIN_SESSION_MAX_SECONDS
# after signing in whatever happens (tenants.middleware.SessionLimitsMiddleware), and at
# sign-out; the cookie itself dies with the browser or at the maximum.
TWIN_SESSION_IDLE_SECONDS = env_int("TWIN_SESSION_IDLE_SECONDS", 8 * 3600, minimum=60)
TWIN_SESSION_MAX_SECONDS = env_int("TWIN_SESSION_MAX_SECONDS", 12 * 3600, minimum=60)
SESSION_COOKIE_AGE = TWIN_SESSION_MAX_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Two-factor (TOTP, django-otp): optional per person, required by a tenant that sets
# Tenant.require_two_factor. Wrong codes are throttled by django-otp (1, 2, 4 … s apart).
OTP_TOTP_ISSUER = env_str("TWIN_OTP_ISSUER", "Twin")
OTP_TOTP_THROTTLE_FACTOR = 1
# How long a password that was right may wait for its code (or its enrollment).
TWIN_TWO_FACTOR_PENDING_SECONDS = 600

# --- HTTPS and security headers -------------------------------------------------------------
# TWIN_HTTPS=1 when Twin is reached over HTTPS (directly or behind a TLS proxy): redirects
# plain HTTP, sends HSTS, and keeps the session and CSRF cookies off plain HTTP.
# TWIN_TRUST_X_FORWARDED_PROTO=1 only behind a proxy that sets X-Forwarded-Proto itself.
TWIN_HTTPS = env_bool("TWIN_HTTPS", False)
SECURE_SSL_REDIRECT = TWIN_HTTPS
SESSION_COOKIE_SECURE = TWIN_HTTPS
CSRF_COOKIE_SECURE = TWIN_HTTPS
SECURE_HSTS_SECONDS = env_int("TWIN_HSTS_SECONDS", 31536000, minimum=0) if TWIN_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("TWIN_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("TWIN_HSTS_PRELOAD", True)
if env_bool("TWIN_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content Security Policy (django-csp) on every response: only this origin's scripts (no
# inline ones: a nonce where a page needs one), styles and frames; no plugins; nothing may
# frame a dashboard page. 'self' in connect-src covers ws:// and wss:// to this same host
# (CSP level 3), which the live pages' websockets use. Pause screenshots and live frames
# are data: images. /api/docs (Swagger UI) widens style-src for itself only (twin_site/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "media-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Redis: transport only; the database is the source of truth -------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, which cuts channels_redis's
        # 5 s blocking pop short and drops every idle websocket: allow the pop to finish.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": "twin:channels"},
    }
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "runs"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("TWIN_VISIBILITY_TIMEOUT", 900, minimum=30)}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Worker processes connect to the host browser as they start (runs.tasks): give them time.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 60
# A run worker is one process whose threads each drive a run (engine.bridge): `celery worker -Q
# runs,host.<id>` needs no -P or -c. The webhooks worker names its own (-c 8 -P threads).
CELERY_WORKER_POOL = "threads"
TWIN_SWEEP_INTERVAL = env_float("TWIN_SWEEP_INTERVAL", 15.0)
# A worker host counts as alive this long after its worker last said so (every third of it):
# resumes of its paused runs go to other hosts, from the checkpoint, once it is not (runs/hosts.py).
TWIN_HOST_ALIVE_SECONDS = env_float("TWIN_HOST_ALIVE_SECONDS", 30.0)
CELERY_BEAT_SCHEDULE = {
    "expire-pauses": {"task": "approvals.tasks.expire_pauses_task", "schedule": TWIN_SWEEP_INTERVAL},
    "sweep-runs": {"task": "runs.tasks.sweep_runs_task", "schedule": TWIN_SWEEP_INTERVAL},
    "purge-media": {"task": "runs.tasks.purge_media_task", "schedule": 3600.0},
    # Daily (a missed one runs when beat starts again): the signed audit heads, outside the database.
    "audit-checkpoint": {"task": "runs.tasks.audit_checkpoint_task", "schedule": crontab(minute=17, hour=3)},
    "dispatch-webhooks": {
        "task": "webhooks.tasks.dispatch_webhooks_task",
        "schedule": TWIN_SWEEP_INTERVAL,
        "options": {"queue": "webhooks"},
    },
}

# --- Twin -----------------------------------------------------------------------------------
# The worker host owning parked pages; a resume is routed to this host's own queue.
TWIN_HOST_ID = env_str("TWIN_HOST_ID", socket.gethostname())
TWIN_CHROMIUM = env_str("TWIN_CHROMIUM", "")
# Off, 1 (every private, loopback and link-local range) or a list that opens only what it names
# ("127.0.0.1:8000-9000,10.0.0.0/8"). The host browser's DevTools and proxy ports, the web port,
# Redis, PostgreSQL and the metadata addresses stay refused whatever it says (engine/netguard.py).
TWIN_ALLOW_PRIVATE_URLS = env_private_urls("TWIN_ALLOW_PRIVATE_URLS")
# The port Twin's web server listens on (refused to runs and webhooks like the other services).
TWIN_WEB_PORT = env_int("PORT", 8000, minimum=1)
# Parked pages (paused runs' live pages) a worker host keeps: within a memory budget, priced at
# what its pages measure (engine.memory); past it the least recently paused are closed and their
# runs restored from the checkpoint when answered. TWIN_MAX_PARKED_PAGES also caps their count.
TWIN_PARKED_MEMORY_MB = env_int("TWIN_PARKED_MEMORY_MB", default_parked_memory_mb(), minimum=0)
TWIN_MAX_PARKED_PAGES = env_int("TWIN_MAX_PARKED_PAGES", 0, minimum=0)
# How many runs one worker host drives at once: its run worker's threads (one process, one
# Playwright loop: engine.bridge). Past it runs stay queued, each tenant in turn (runs.admission).
TWIN_HOST_ACTIVE_RUNS = env_int("TWIN_HOST_ACTIVE_RUNS", default_active_runs(), minimum=1)
CELERY_WORKER_CONCURRENCY = TWIN_HOST_ACTIVE_RUNS
TWIN_DEFAULT_STEP_TIMEOUT = env_float("TWIN_DEFAULT_STEP_TIMEOUT", 15.0)
TWIN_DEFAULT_EXPIRES_IN = env_int("TWIN_DEFAULT_EXPIRES_IN", 86400, minimum=1)
TWIN_MASTER_KEY = env_secret("TWIN_MASTER_KEY")
TWIN_VIEWPORT = (1280, 720)
# Session video: every run is recorded unless TWIN_VIDEO=0. Frames per second kept (a still
# page costs nothing), JPEG quality of the frames, the codec of the joined video (vp8 → WebM,
# h264 → MP4) and its quality (CRF: lower is better and bigger); media (videos and pause
# screenshots) older than TWIN_MEDIA_RETENTION_DAYS is deleted (0 keeps it forever).
TWIN_VIDEO = env_bool("TWIN_VIDEO", True)
TWIN_VIDEO_FPS = env_float("TWIN_VIDEO_FPS", 15.0)
TWIN_VIDEO_QUALITY = env_int("TWIN_VIDEO_QUALITY", 60, minimum=1)
TWIN_VIDEO_CODEC = env_str("TWIN_VIDEO_CODEC", "vp8")
TWIN_VIDEO_CRF = env_int("TWIN_VIDEO_CRF", 32, minimum=0)
# A take-over is recorded from the live view for at most this long (it may be left open for hours).
TWIN_VIDEO_TAKEOVER_MAX_SECONDS = env_int("TWIN_VIDEO_TAKEOVER_MAX_SECONDS", 900, minimum=0)
TWIN_MEDIA_RETENTION_DAYS = env_int("TWIN_MEDIA_RETENTION_DAYS", 90, minimum=0)
# The agent (engine.planner): any OpenAI-compatible Chat Completions endpoint (a tenant may set
# its own). Unset: goal-only runs replay matching skills, and refuse to plan.
TWIN_LLM_BASE_URL = env_str("TWIN_LLM_BASE_URL", "")
TWIN_LLM_MODEL = env_str("TWIN_LLM_MODEL", "")
TWIN_LLM_API_KEY = env_str("TWIN_LLM_API_KEY", "")
TWIN_LLM_TIMEOUT = env_float("TWIN_LLM_TIMEOUT", 120.0)
# How much of the page's snapshot one model call may carry (characters; the rest is cut).
TWIN_LLM_SNAPSHOT_LIMIT = env_int("TWIN_LLM_SNAPSHOT_LIMIT", 60_000, minimum=1000)
# Abuse limits: failed token attempts per client address per window; wrong inputs (one-time
# codes) per pause before it is locked, and for how long.
TWIN_AUTH_FAILURE_LIMIT = env_int("TWIN_AUTH_FAILURE_LIMIT", 20, minimum=1)
TWIN_AUTH_FAILURE_WINDOW = env_int("TWIN_AUTH_FAILURE_WINDOW", 300, minimum=1)
TWIN_INPUT_ATTEMPTS = env_int("TWIN_INPUT_ATTEMPTS", 5, minimum=1)
TWIN_INPUT_LOCK_SECONDS = env_int("TWIN_INPUT_LOCK_SECONDS", 300, minimum=1)
# Decision links (emails, chat) stop working when their pause is decided or expires, and at
# the latest after this many seconds.
TWIN_LINK_MAX_AGE = env_int("TWIN_LINK_MAX_AGE", 7 * 86400, minimum=60)
# Email (pause notifications): Django's console backend unless configured.
EMAIL_BACKEND = env_str("TWIN_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("TWIN_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("TWIN_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("TWIN_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_secret("TWIN_EMAIL_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("TWIN_EMAIL_TLS", False)
EMAIL_FILE_PATH = env_str("TWIN_EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("TWIN_EMAIL_FROM", "Twin <twin@localhost>")
# Where Twin is reached from outside: absolute links in webhooks and emails.
TWIN_PUBLIC_URL = env_str("TWIN_PUBLIC_URL", f"http://127.0.0.1:{env_int('PORT', 8000, minimum=1)}")
# Webhooks: seconds to wait for a receiver; attempts before giving up on a message; failed
# attempts in a row after which an endpoint is disabled; a factor on the retry schedule
# (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) — below 1 only for tests and benchmarks.
TWIN_WEBHOOK_TIMEOUT = env_float("TWIN_WEBHOOK_TIMEOUT", 10.0)
TWIN_WEBHOOK_MAX_ATTEMPTS = env_int("TWIN_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
TWIN_WEBHOOK_DISABLE_AFTER = env_int("TWIN_WEBHOOK_DISABLE_AFTER", 20, minimum=1)
TWIN_WEBHOOK_BACKOFF_SCALE = env_float("TWIN_WEBHOOK_BACKOFF_SCALE", 1.0)
# Decisions record, and the token-guessing limit counts, the client's address: REMOTE_ADDR, or
# X-Forwarded-For's first address when Twin runs behind a proxy you trust to set it (otherwise
# anyone could write their own).
TWIN_TRUST_X_FORWARDED_FOR = env_bool("TWIN_TRUST_X_FORWARDED_FOR", False)

# --- Request size limits (the per-field limits live in twin_site/limits.py) -----------------
# An API body larger than TWIN_MAX_BODY_BYTES answers 413; the dashboard's start form takes a
# program of the same size. Django's own cap on a form's fields sits above it (a pasted program
# is sent as a form field), so the form can say what is wrong instead of Django's bare 400.
TWIN_MAX_BODY_BYTES = env_int("TWIN_MAX_BODY_BYTES", 1_000_000, minimum=10_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = TWIN_MAX_BODY_BYTES + 1_000_000
FILE_UPLOAD_MAX_MEMORY_SIZE = TWIN_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["twin_site.limits.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "twin_site.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Twin API",
    "DESCRIPTION": "Browser automation runs that pause for a human and resume at the exact step.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files come from the drf-spectacular-sidecar wheel: /api/docs needs no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "twin_site.schema.add_error_responses",
        "twin_site.schema.answers_carry_every_field",
    ],
    "ENUM_NAME_OVERRIDES": {
        "GateKindEnum": "approvals.models.GateKind",
        "SecretKindEnum": "vault.models.SecretKind",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("TWIN_LOG_LEVEL", "INFO")},
    # django-axes logs every sign-in at INFO; failures and lockouts (WARNING) are what matter.
    "loggers": {"django.db.backends": {"level": "INFO"}, "axes": {"level": "WARNING"}},
}
