"""Settings for calsync.

Every setting comes from the environment (or a `.env` file beside manage.py) with a safe default.
The embedded default is a SQLite file plus django-q2's ORM broker, so nothing but Python is needed.
`DATABASE_URL=postgres://…` switches to PostgreSQL; `REDIS_URL` switches the task broker to Redis.
"""

from datetime import timedelta
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
    # Health and readiness probes, /metrics, the alert digest.
    "ops",
    # Admin login throttling (see "Login throttling" below).
    "axes",
]
# --- Sandbox (local Kommo/Zoom emulators) -----------------------------------------------------------
# True when calsync runs against the emulators (`manage.py run_emulators`; scripts/run.sh sets it), so
# the admin says so loudly.
CALSYNC_SANDBOX = env.bool("CALSYNC_SANDBOX", default=False)
if CALSYNC_SANDBOX or DEBUG:
    # The emulators and the newcomer commands (run_emulators, send_test_booking, sandbox_admin): only
    # where wanted, never in a production process.
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "ops.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
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
    # Keep the connection between requests as on PostgreSQL: opening one costs a file open and the PRAGMAs.
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Locale ---------------------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en-us")
# The zone sales ops think in: admin times and the second time shown in CRM notes.
CALSYNC_TIME_ZONE = env.str("CALSYNC_TIME_ZONE", default="UTC")
TIME_ZONE = CALSYNC_TIME_ZONE
# The admin's Replay and Sync again run the sync in the request (a second or two) and report its outcome;
# false: they queue it for the worker and say so.
CALSYNC_ADMIN_SYNC_INLINE = env.bool("CALSYNC_ADMIN_SYNC_INLINE", default=True)
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
# Variables marked with @sensitive_variables (the signing keys) stay hidden on error pages even with DEBUG on.
DEFAULT_EXCEPTION_REPORTER_FILTER = "calsync.debug.AlwaysCleansingFilter"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Login throttling (django-axes) ---------------------------------------------------------------
# After CALSYNC_LOGIN_FAILURE_LIMIT wrong passwords for one username, that username cannot log in for
# CALSYNC_LOGIN_LOCKOUT_MINUTES, right password or not (429). Counted per username, not per address:
# behind the TLS proxy every browser has the proxy's address. Attempts live in the database, so every
# gunicorn worker and host sees the same count. `manage.py axes_reset_username <name>` unlocks early.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("CALSYNC_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("CALSYNC_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
# The login form's own field; nothing from headers.
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False
# axes.W006 asks for ip_address among the lockout parameters. Per username is deliberate: rotating
# addresses does not help against it, while per address behind the proxy would lock everyone out.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

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
# Settings whose values never appear in a stored error or a log line (each service's block adds its
# own; the Calendly signing keys are redacted as well).
CALSYNC_SECRET_SETTINGS = ["CALENDLY_API_TOKEN"]

# --- Kommo ----------------------------------------------------------------------------------------
KOMMO_BASE_URL = env.str("KOMMO_BASE_URL", default="")
KOMMO_ACCESS_TOKEN = env.str("KOMMO_ACCESS_TOKEN", default="")
CALSYNC_SECRET_SETTINGS += ["KOMMO_ACCESS_TOKEN", "KOMMO_CLIENT_SECRET"]
KOMMO_MAX_RPS = env.float("KOMMO_MAX_RPS", default=7.0)
# --- crm: Kommo sync settings; documented in docs/crm.md -----------------------------------------
# Headroom under KOMMO_MAX_RPS for timing jitter between taking a slot and Kommo counting the request.
KOMMO_RATE_MARGIN = env.float("KOMMO_RATE_MARGIN", default=0.05)
KOMMO_CONNECT_TIMEOUT = env.float("KOMMO_CONNECT_TIMEOUT", default=5.0)
KOMMO_READ_TIMEOUT = env.float("KOMMO_READ_TIMEOUT", default=20.0)
# A 429 asking for a longer wait than this is left to the pipeline's retry instead of blocking a worker.
KOMMO_MAX_INLINE_WAIT = env.float("KOMMO_MAX_INLINE_WAIT", default=10.0)
KOMMO_USERS_CACHE_SECONDS = env.int("KOMMO_USERS_CACHE_SECONDS", default=3600)
# Deal matching: which open deal a booking belongs to (docs/crm.md, crm/matching.py).
KOMMO_DEAL_ID_QUESTION = env.str("KOMMO_DEAL_ID_QUESTION", default="Deal ID")
KOMMO_DEAL_ID_UTM_FIELD = env.str("KOMMO_DEAL_ID_UTM_FIELD", default="utm_content")
KOMMO_DEAL_ID_UTM_PREFIX = env.str("KOMMO_DEAL_ID_UTM_PREFIX", default="deal-")
KOMMO_PIPELINE_IDS = env.list("KOMMO_PIPELINE_IDS", cast=int, default=[])
KOMMO_SEVERAL_DEALS_POLICY = env.str("KOMMO_SEVERAL_DEALS_POLICY", default="most_recent")  # or review
KOMMO_NO_DEAL_POLICY = env.str("KOMMO_NO_DEAL_POLICY", default="inbound_lead")  # or review
# Writes.
KOMMO_TASK_TYPE_ID = env.int("KOMMO_TASK_TYPE_ID", default=2)
KOMMO_INBOUND_PIPELINE_ID = env.int("KOMMO_INBOUND_PIPELINE_ID", default=None)
KOMMO_INBOUND_SOURCE_UID = env.str("KOMMO_INBOUND_SOURCE_UID", default="calsync-calendly")
KOMMO_INBOUND_SOURCE_NAME = env.str("KOMMO_INBOUND_SOURCE_NAME", default="Calendly")
# Optional folder searched before templates/ for crm/*.txt (a deployment's own wording and language).
KOMMO_TEMPLATE_DIR = env.str("KOMMO_TEMPLATE_DIR", default="")
# --- crm: Kommo OAuth 2.0 (docs/operations.md "Kommo OAuth") ---
# With all three set and an account connected in the admin (CRM → Kommo connection), calsync uses OAuth
# tokens instead of KOMMO_ACCESS_TOKEN. KOMMO_REDIRECT_URI = https://<calsync>/admin/crm/kommoconnection/callback/
KOMMO_CLIENT_ID = env.str("KOMMO_CLIENT_ID", default="")
KOMMO_CLIENT_SECRET = env.str("KOMMO_CLIENT_SECRET", default="")
KOMMO_REDIRECT_URI = env.str("KOMMO_REDIRECT_URI", default="")
# Kommo's consent page (amoCRM RU: https://www.amocrm.ru/oauth).
KOMMO_OAUTH_URL = env.str("KOMMO_OAUTH_URL", default="https://www.kommo.com/oauth")
# Seconds before the 24-hour access token expires at which it is refreshed.
KOMMO_OAUTH_REFRESH_MARGIN = env.int("KOMMO_OAUTH_REFRESH_MARGIN", default=600)
# --- end crm --------------------------------------------------------------------------------------

# --- Zoom -----------------------------------------------------------------------------------------
ZOOM_ACCOUNT_ID = env.str("ZOOM_ACCOUNT_ID", default="")
ZOOM_CLIENT_ID = env.str("ZOOM_CLIENT_ID", default="")
ZOOM_CLIENT_SECRET = env.str("ZOOM_CLIENT_SECRET", default="")
CALSYNC_SECRET_SETTINGS += ["ZOOM_CLIENT_SECRET"]
ZOOM_API_URL = env.str("ZOOM_API_URL", default="https://api.zoom.us/v2")
ZOOM_OAUTH_URL = env.str("ZOOM_OAUTH_URL", default="https://zoom.us/oauth/token")
ZOOM_DEFAULT_USER = env.str("ZOOM_DEFAULT_USER", default="me")
# --- Zoom: meetings calsync makes (conferencing app; see docs/conferencing.md) ---
# Only these event types get a Zoom meeting (names or event type URIs, comma-separated); empty = all.
# Bookings whose location Calendly already made into a conference (Zoom, Meet, Teams…) never get one.
ZOOM_EVENT_TYPES = env.list("ZOOM_EVENT_TYPES", default=[])
# Meeting settings. Safe defaults: nobody joins before the host is there, no recording without consent.
ZOOM_WAITING_ROOM = env.bool("ZOOM_WAITING_ROOM", default=True)
ZOOM_JOIN_BEFORE_HOST = env.bool("ZOOM_JOIN_BEFORE_HOST", default=False)
ZOOM_MUTE_UPON_ENTRY = env.bool("ZOOM_MUTE_UPON_ENTRY", default=True)
ZOOM_AUTO_RECORDING = env.str("ZOOM_AUTO_RECORDING", default="none")  # none | local | cloud
# How long "is this Calendly host a user of our Zoom account?" is remembered (shared cache).
ZOOM_USER_CACHE_SECONDS = env.int("ZOOM_USER_CACHE_SECONDS", default=6 * 3600)
# Whether calsync makes the meetings' conference links (the Kommo note says whether a link follows):
# a dotted path to a function of no arguments, so that crm need not import conferencing.
CALSYNC_CONFERENCE_CONFIGURED = "conferencing.sync.zoom_configured"
# --- end Zoom meetings block ---

# --- Processing pipeline --------------------------------------------------------------------------
# Dotted paths of `reconcile(booking)` functions run, in order, after a booking changes.
# Zoom comes before Kommo so that the join link can go into the deal's note.
# Each one returns "… not configured" and does nothing until its credentials are set.
CALSYNC_RECONCILERS = env.list("CALSYNC_RECONCILERS", default=["conferencing.sync.reconcile", "crm.sync.reconcile"])
# Run a reconciler's read-ahead (`prepare`, e.g. Kommo's deal lookup) in a thread alongside the steps
# before it (the Zoom meeting), instead of after them.
CALSYNC_CONCURRENT_STEPS = env.bool("CALSYNC_CONCURRENT_STEPS", default=True)
# Events waiting in the queue that one worker takes together (a burst), so that Kommo gets their deals,
# notes and tasks in one request each instead of one per booking; 1 = one event at a time.
CALSYNC_BATCH_SIZE = env.int("CALSYNC_BATCH_SIZE", default=50)
# Seconds to wait before each automatic retry of a failed event; after the last, a human decides.
CALSYNC_RETRY_BACKOFF = env.list("CALSYNC_RETRY_BACKOFF", cast=int, default=[60, 300, 1800, 7200, 43200])
# An event still `received` this long after it arrived was never picked up (lost enqueue): sweep it.
CALSYNC_ENQUEUE_GRACE = env.int("CALSYNC_ENQUEUE_GRACE", default=120)
# An event `processing` longer than this lost its worker (killed, timed out): fail it and retry it.
CALSYNC_PROCESSING_LEASE = env.int("CALSYNC_PROCESSING_LEASE", default=600)
# How long one event waits for another worker to finish syncing the same booking before retrying later.
CALSYNC_BOOKING_LOCK_WAIT = env.float("CALSYNC_BOOKING_LOCK_WAIT", default=10.0)

# --- Verification against the live state (bookings.verification; docs/operations.md) -------------
# Modules with `check(bookings)` and `prepare_repair(booking, finding)`, like CALSYNC_RECONCILERS.
CALSYNC_VERIFIERS = env.list("CALSYNC_VERIFIERS", default=["conferencing.verify", "crm.verify"])
# The schedule's interval in minutes; 0 turns the scheduled verification off (verify_sync still works).
CALSYNC_VERIFY_MINUTES = env.int("CALSYNC_VERIFY_MINUTES", default=30)
# Live bookings starting within this many days are verified.
CALSYNC_VERIFY_DAYS = env.int("CALSYNC_VERIFY_DAYS", default=14)
# Longest a verification waits (seconds) for webhook work to drain before it stops and tries next run.
CALSYNC_VERIFY_MAX_YIELD = env.float("CALSYNC_VERIFY_MAX_YIELD", default=60.0)

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
    # The ORM broker looks for a task, and sleeps this long when there is none: the average pickup delay
    # is half of it. 0.05 s costs an idle cluster ~20 indexed SELECTs a second. Redis needs no poll (a
    # blocking pop hands the task over at once).
    "poll": env.float("CALSYNC_QUEUE_POLL", default=0.05),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Logging --------------------------------------------------------------------------------------
# JSON lines by default (one object per line: time, level, logger, message, and during a sync
# event_id, booking_id, invitee_uri); `plain` for reading in a terminal. E-mail addresses are masked
# at INFO and above and known secrets are masked at every level (calsync.logctx.RedactFilter).
LOG_LEVEL = env.str("CALSYNC_LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("CALSYNC_LOG_FORMAT", default="json").lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "calsync.logctx.ContextFilter"},
        "redact": {"()": "calsync.logctx.RedactFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(log_context)s"},
        "json": {"()": "calsync.logctx.json_formatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        "django.db.backends": {"level": "INFO"},
    },
}

# --- Operations: subscription watch, reconciliation, health, metrics, alerts, retention ---
# The public base URL of this service (https://calsync.example.com): links in alert mails, and the
# default webhook URL that the subscription watch checks.
CALSYNC_PUBLIC_URL = env.str("CALSYNC_PUBLIC_URL", default="")
CALENDLY_WEBHOOK_URL = env.str(
    "CALENDLY_WEBHOOK_URL",
    default=f"{CALSYNC_PUBLIC_URL.rstrip('/')}/webhooks/calendly/" if CALSYNC_PUBLIC_URL else "",
)
# organization (needs an owner/admin token: every member's bookings) or user (the token's own).
CALENDLY_WEBHOOK_SCOPE = env.str("CALENDLY_WEBHOOK_SCOPE", default="organization")
# Create a new subscription (then delete the disabled one) when Calendly has disabled ours.
CALENDLY_RECREATE_DISABLED_SUBSCRIPTION = env.bool("CALENDLY_RECREATE_DISABLED_SUBSCRIPTION", default=False)
# Calendly allows 500 requests per user per minute (50 on Free), shared with the user's other integrations.
CALENDLY_MAX_REQUESTS_PER_MINUTE = env.int("CALENDLY_MAX_REQUESTS_PER_MINUTE", default=300)
# The scheduled reconciliation looks at events starting from this long ago until this far ahead.
CALENDLY_RECONCILE_PAST_HOURS = env.float("CALENDLY_RECONCILE_PAST_HOURS", default=24)
CALENDLY_RECONCILE_FUTURE_DAYS = env.float("CALENDLY_RECONCILE_FUTURE_DAYS", default=60)
# /readyz answers 503 when the oldest unprocessed event is older than this (seconds; 0 = never).
CALSYNC_READY_MAX_QUEUE_LAG = env.int("CALSYNC_READY_MAX_QUEUE_LAG", default=900)
CALSYNC_METRICS_ENABLED = env.bool("CALSYNC_METRICS_ENABLED", default=True)
# When set, /metrics wants `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: …}`).
CALSYNC_METRICS_TOKEN = env.str("CALSYNC_METRICS_TOKEN", default="")
# Alert digests: recipients, at most one mail per interval (seconds), and how early to warn about a
# review item whose meeting is near.
CALSYNC_ALERT_EMAILS = env.list("CALSYNC_ALERT_EMAILS", default=[])
CALSYNC_ALERT_INTERVAL = env.int("CALSYNC_ALERT_INTERVAL", default=3600)
CALSYNC_REVIEW_ALERT_HOURS = env.float("CALSYNC_REVIEW_ALERT_HOURS", default=24)
# A live booking this close to its start without its Zoom meeting (e.g. the host's daily limit) is alerted.
CALSYNC_ZOOM_ALERT_HOURS = env.float("CALSYNC_ZOOM_ALERT_HOURS", default=4)
CALSYNC_RETENTION_DAYS = env.int("CALSYNC_RETENTION_DAYS", default=180)
# Finished events (and their processing attempts) are deleted after this many days; 0 keeps them forever.
CALSYNC_EVENT_DELETE_DAYS = env.int("CALSYNC_EVENT_DELETE_DAYS", default=400)
# Outgoing mail: EMAIL_URL=smtp+tls://user:password@smtp.example.com:587 (django-environ's syntax).
vars().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
# Seconds an SMTP connect, send or read may take: a stuck mail server must not hold a worker until the
# task timeout (alert digests are sent from the task queue).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="calsync@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_SUBJECT_PREFIX = env.str("EMAIL_SUBJECT_PREFIX", default="")

# CALSYNC_SANDBOX (whether the sandbox app is installed) is read next to INSTALLED_APPS above.
