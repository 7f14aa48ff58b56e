"""Settings, read from the environment. See README.md for every variable."""

import base64
import hashlib
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY", "")
    if key:
        return key
    # A safe default: a random key made once per installation and kept beside the data,
    # so every process of this installation (web, worker, beat) signs with the same key.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
if not PUBLIC_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"PUBLIC_BASE_URL={PUBLIC_BASE_URL!r} must start with http:// or https://")

# Bank card numbers collected for manual payouts are encrypted with this key (Fernet, 32
# url-safe base64 bytes). Without one, a key is derived from SECRET_KEY.
CARD_ENCRYPTION_KEY = env_str("CARD_ENCRYPTION_KEY", "") or base64.urlsafe_b64encode(
    hashlib.sha256(("card:" + SECRET_KEY).encode()).digest()
).decode()
try:
    if len(base64.urlsafe_b64decode(CARD_ENCRYPTION_KEY.encode())) != 32:
        raise ValueError
except ValueError:
    raise ImproperlyConfigured(
        "CARD_ENCRYPTION_KEY must be a Fernet key: 32 url-safe base64-encoded bytes "
        "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
    ) from None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_celery_beat",
    "django_htmx",
    "merchants",
    "channels.apps.ChannelsConfig",
    "refunds",
    "refunds.api.apps.MerchantApiConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "refunds.config_audit.ConfigAuditMiddleware",
    "refunds.middleware.TimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "django.template.context_processors.i18n",
                "refunds.navigation.frame",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=env_int("DB_CONN_MAX_AGE", 0)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default must serve a few people at once: writers queue (BEGIN IMMEDIATE
    # plus a generous busy timeout) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db_{os.getpid()}.sqlite3")}
else:
    # psycopg prepares a statement once it has run this many times on a connection, so that
    # PostgreSQL stops parsing and planning it. Only the hot path's plain SQL (merchants/sql.py)
    # binds on the server and can be prepared. Behind a transaction-pooling PgBouncer older
    # than 1.21, set DB_PREPARE_THRESHOLD=-1 to turn it off.
    _threshold = env_int("DB_PREPARE_THRESHOLD", 5, minimum=-1)
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None if _threshold < 0 else _threshold
    # One test database per test process, so that two test runs on one machine never share one.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# The merchant API (refunds/api/, API.md): bearer keys, JSON only, one error format.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["refunds.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["refunds.api.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["refunds.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["refunds.api.parsers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "refunds.api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# Requests per API key per minute (a fixed window counted in the database, so every web
# process shares it: refunds/api/throttling.py). 0 turns the limit off.
API_RATE_LIMIT = env_int("API_RATE_LIMIT", 600, minimum=0)
API_RATE_WINDOW_SECONDS = 60
SPECTACULAR_SETTINGS = {
    "TITLE": "Refund back-office API",
    "DESCRIPTION": "Merchants and the payment core report payments and ask for refunds (see API.md).",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs are public: they describe the API, they do not use it.
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": False,
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    "ENUM_NAME_OVERRIDES": {
        "RefundStatusEnum": "refunds.models.Refund.Status",
        "LegStatusEnum": "refunds.models.RefundLeg.Status",
        "RefundDirectionEnum": "refunds.models.Refund.Direction",
        "RefundSourceEnum": "refunds.models.Refund.Source",
        "PartKindEnum": "refunds.models.PaymentPart.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "refunds.api.schema.postprocess_schema",
    ],
    # Swagger UI from the drf-spectacular-sidecar package: no CDN. (Not Redoc: its page loads
    # web fonts from Google.)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "displayOperationId": False},
}

# Celery. The embedded default needs no server process: a broker on the file system under
# var/ (the database stays the source of truth; the broker only carries hints).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for sub in ("out", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "data_folder_processed": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
    }
elif not CELERY_BROKER_URL.startswith(("redis://", "rediss://", "amqp://", "amqps://", "memory://")):
    raise ImproperlyConfigured(f"CELERY_BROKER_URL={CELERY_BROKER_URL!r}: use redis://, amqp:// or filesystem://")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Signs the sandbox channels' notifications (they play the channel's side in the demo and tests).
SANDBOX_CHANNEL_SECRET = env_str("SANDBOX_CHANNEL_SECRET", "") or hashlib.sha256(
    ("sandbox:" + SECRET_KEY).encode()
).hexdigest()

CELERY_TASK_ROUTES = {
    "refunds.tasks.dispatch_leg": {"queue": "dispatch"},
    "refunds.tasks.query_leg": {"queue": "dispatch"},
    # Its own queue: a slow merchant endpoint (up to WEBHOOK_TIMEOUT per attempt) never delays dispatch.
    "merchants.tasks.deliver_webhook": {"queue": "notifications"},
}

# When to ask a channel about an unanswered leg: seconds after submission, then after each
# query; the last figure repeats (1 min, 5 min, 30 min, then hourly, as the channels ask).
try:
    CHANNEL_QUERY_BACKOFF = [int(x) for x in env_list("CHANNEL_QUERY_BACKOFF", "60,300,1800,3600")]
except ValueError:
    raise ImproperlyConfigured("CHANNEL_QUERY_BACKOFF must be comma-separated seconds, e.g. 60,300,1800,3600") from None
# A channel's "no such refund" is trusted only this long after the last submission began.
# Seconds a leg handed to the workers by the dispatch relay waits before it is sent again (its
# message lost); longer than a busy queue takes to reach it.
DISPATCH_RELAY_GRACE = env_int("DISPATCH_RELAY_GRACE", 120, minimum=1)
CHANNEL_RESUBMIT_GRACE = env_int("CHANNEL_RESUBMIT_GRACE", 300, minimum=0)  # longer than dispatch_leg's time limit
# Seconds a sandbox channel takes to answer a submission (a slow channel, for tests and demos).
try:
    SANDBOX_SUBMIT_DELAY = float(env_str("SANDBOX_SUBMIT_DELAY", "0") or 0)
except ValueError:
    raise ImproperlyConfigured("SANDBOX_SUBMIT_DELAY must be a number of seconds") from None

# Outbound notifications (merchants/webhooks.py). Seconds to wait for a receiver's answer.
try:
    WEBHOOK_TIMEOUT = float(env_str("WEBHOOK_TIMEOUT", "10") or 10)
except ValueError:
    raise ImproperlyConfigured("WEBHOOK_TIMEOUT must be a number of seconds") from None
if not 0 < WEBHOOK_TIMEOUT <= 30:
    # A delivery task's hard time limit is 60 s: a longer wait would be killed mid-attempt.
    raise ImproperlyConfigured("WEBHOOK_TIMEOUT must be more than 0 and at most 30 seconds")
# The wait after each failed attempt; when they are used up the delivery is dead. API.md promises
# retries for at least 24 hours: 1 min, 5 min, 15 min, 1 h, 2 h, 4 h, then 8 h three times (31 h).
try:
    WEBHOOK_RETRY_DELAYS = [int(x) for x in env_list("WEBHOOK_RETRY_DELAYS", "60,300,900,3600,7200,14400,28800,28800,28800")]
except ValueError:
    raise ImproperlyConfigured("WEBHOOK_RETRY_DELAYS must be comma-separated seconds") from None
if sum(WEBHOOK_RETRY_DELAYS) < 24 * 3600 or min(WEBHOOK_RETRY_DELAYS, default=0) <= 0:
    raise ImproperlyConfigured("WEBHOOK_RETRY_DELAYS must be positive and add up to at least 24 hours (86400)")
# The marketing system hears of refunds that touch a coupon (S17, S22). Empty: no such notice.
MARKETING_WEBHOOK_URL = env_str("MARKETING_WEBHOOK_URL", "").strip()
MARKETING_WEBHOOK_SECRET = env_str("MARKETING_WEBHOOK_SECRET", "")
if MARKETING_WEBHOOK_URL and not MARKETING_WEBHOOK_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"MARKETING_WEBHOOK_URL={MARKETING_WEBHOOK_URL!r} must start with http:// or https://")
if MARKETING_WEBHOOK_URL and not MARKETING_WEBHOOK_SECRET:
    raise ImproperlyConfigured("MARKETING_WEBHOOK_SECRET is required when MARKETING_WEBHOOK_URL is set")

# FX (S23): a refund converts at its day's rate; on days without a published rate (weekends,
# holidays) the latest rate at most this many days old is used, and an older one is refused.
FX_RATE_MAX_AGE_DAYS = env_int("FX_RATE_MAX_AGE_DAYS", 3, minimum=0, maximum=31)
