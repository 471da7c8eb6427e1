"""Settings for calsync.

Every setting comes from the environment (or a `.env` file beside manage.py) with a safe default.
The embedded default is a SQLite file plus django-q2's ORM broker, so nothing but Python is needed.
`DATABASE_URL=postgres://…` switches to PostgreSQL; `REDIS_URL` switches the task broker to Redis.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local `.env` (written by scripts/run.sh on first start) fills in what the environment does not set.
if env.bool("CALSYNC_READ_DOTENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# Refuse to start in production without a real key; local runs get a fixed, obviously-unsafe one.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-only-key" if DEBUG else "")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see README: Configuration).")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_q",
    "calsync",
    "bookings",
    "conferencing",
    "crm",
    # Local Kommo/Zoom emulators and the newcomer sandbox commands (send_test_booking, run_emulators).
    "sandbox",
]

MIDDLEWARE = [
    "calsync.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "calsync.urls"
WSGI_APPLICATION = "calsync.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'calsync.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write to the same file: WAL lets readers and one writer overlap,
    # IMMEDIATE takes the write lock up front instead of failing mid-transaction with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Locale ---------------------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en-us")
# The zone sales ops think in: admin times and the second time shown in CRM notes.
CALSYNC_TIME_ZONE = env.str("CALSYNC_TIME_ZONE", default="UTC")
TIME_ZONE = CALSYNC_TIME_ZONE
USE_I18N = True
USE_TZ = True

# --- Static files (admin) -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security -------------------------------------------------------------------------------------
# calsync normally sits behind a TLS-terminating proxy that sets X-Forwarded-Proto.
if env.bool("SECURE_PROXY_SSL_HEADER", default=True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Calendly counts any 3xx as a failed delivery: never redirect the webhook, whatever the proxy does.
SECURE_REDIRECT_EXEMPT = [r"^webhooks/"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The webhook is authenticated by its signature, nothing else; no browsable API in production.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

# --- Calendly -------------------------------------------------------------------------------------
# Comma-separated to allow a rotation: the first key is current, the others are still accepted.
CALENDLY_SIGNING_KEYS = env.list("CALENDLY_SIGNING_KEY", default=[])
CALENDLY_ALLOW_UNSIGNED = env.bool("CALENDLY_ALLOW_UNSIGNED", default=False)
CALENDLY_SIGNATURE_TOLERANCE = env.int("CALENDLY_SIGNATURE_TOLERANCE", default=180)
CALENDLY_MAX_BODY_BYTES = env.int("CALENDLY_MAX_BODY_BYTES", default=1024 * 1024)
CALENDLY_API_TOKEN = env.str("CALENDLY_API_TOKEN", default="")
CALENDLY_API_URL = env.str("CALENDLY_API_URL", default="https://api.calendly.com")

# --- Kommo ----------------------------------------------------------------------------------------
KOMMO_BASE_URL = env.str("KOMMO_BASE_URL", default="")
KOMMO_ACCESS_TOKEN = env.str("KOMMO_ACCESS_TOKEN", default="")
KOMMO_MAX_RPS = env.float("KOMMO_MAX_RPS", default=7.0)

# --- Zoom -----------------------------------------------------------------------------------------
ZOOM_ACCOUNT_ID = env.str("ZOOM_ACCOUNT_ID", default="")
ZOOM_CLIENT_ID = env.str("ZOOM_CLIENT_ID", default="")
ZOOM_CLIENT_SECRET = env.str("ZOOM_CLIENT_SECRET", default="")
ZOOM_API_URL = env.str("ZOOM_API_URL", default="https://api.zoom.us/v2")
ZOOM_OAUTH_URL = env.str("ZOOM_OAUTH_URL", default="https://zoom.us/oauth/token")
ZOOM_DEFAULT_USER = env.str("ZOOM_DEFAULT_USER", default="me")

# --- Processing pipeline --------------------------------------------------------------------------
# Dotted paths of `reconcile(booking)` functions run, in order, after a booking changes.
# Zoom comes before Kommo so that the join link can go into the deal's note.
CALSYNC_RECONCILERS = env.list("CALSYNC_RECONCILERS", default=[])
# Seconds to wait before each automatic retry of a failed event; after the last, a human decides.
CALSYNC_RETRY_BACKOFF = env.list("CALSYNC_RETRY_BACKOFF", cast=int, default=[60, 300, 1800, 7200, 43200])
# An event still `received` this long after it arrived was never picked up (lost enqueue): sweep it.
CALSYNC_ENQUEUE_GRACE = env.int("CALSYNC_ENQUEUE_GRACE", default=120)
# An event `processing` longer than this lost its worker (killed, timed out): fail it and retry it.
CALSYNC_PROCESSING_LEASE = env.int("CALSYNC_PROCESSING_LEASE", default=600)
# How long one event waits for another worker to finish syncing the same booking before retrying later.
CALSYNC_BOOKING_LOCK_WAIT = env.float("CALSYNC_BOOKING_LOCK_WAIT", default=10.0)

# --- Task queue (django-q2) and the shared cache ---------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Shared by every process (web workers, task workers, several machines): never process-local memory.
# The database cache needs `manage.py createcachetable` (the run scripts and the test runner do it).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "calsync_cache"}
    )
}
Q_CLUSTER = {
    "name": "calsync",
    "label": "Task queue",
    "workers": env.int("CALSYNC_WORKERS", default=2),
    # A task may wait on Kommo's shared rate limit; the app's own lease catches anything killed.
    "timeout": env.int("CALSYNC_TASK_TIMEOUT", default=300),
    "retry": env.int("CALSYNC_TASK_TIMEOUT", default=300) + 60,
    # Retries, backoff and history belong to WebhookEvent, not to the queue: run each task once.
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 250,
    "catch_up": False,
    "poll": 0.2,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env.str("CALSYNC_LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        "django.db.backends": {"level": "INFO"},
    },
}

# --- Sandbox (local Kommo/Zoom emulators) -----------------------------------------------------------
# True when calsync runs against the emulators (`manage.py run_emulators`), so the admin says so loudly.
CALSYNC_SANDBOX = env.bool("CALSYNC_SANDBOX", default=False)
