"""Watchpost settings: one module, driven by the environment (django-environ).

Every variable read here is documented in `.env.example`. The defaults are the embedded mode used by
`make run`: SQLite in WAL mode, Celery on kombu's filesystem transport, evidence on the local disk.
Production differs only by environment (see docker-compose.yml).
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("WATCHPOST_DEBUG", default=False)
# The embedded default key is for `make run` on a laptop only; `check --deploy` flags it in production.
SECRET_KEY = env.str("WATCHPOST_SECRET_KEY", default="insecure-embedded-dev-key-change-me")
# Keys the audit and custody hash chains (HMAC). Keep it outside the database, and stable: changing it
# makes `verify_audit` report every existing link. Defaults to a key derived from SECRET_KEY.
WATCHPOST_AUDIT_KEY = env.str("WATCHPOST_AUDIT_KEY", default="") or f"audit-chain:{SECRET_KEY}"
ALLOWED_HOSTS = env.list("WATCHPOST_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("WATCHPOST_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "incidents",
    "playbooks",
    "integrations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.SessionTimeoutMiddleware",
    # Django 5.1+: every view needs a login unless it is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.SecurityHeadersMiddleware",
    # One tamper-evident audit row per state-changing request, whatever the view did.
    "config.middleware.AuditMiddleware",
    # AxesMiddleware must be last: it turns a lockout into the lockout response.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # managers land on the dashboard, others on the list
LOGOUT_REDIRECT_URL = "login"

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
                "incidents.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'watchpost.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE avoids "database is locked"
    # on lock upgrades (Django 5.1 "transaction_mode").
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("WATCHPOST_DB_CONN_MAX_AGE", default=60))
    # A pooled connection is pinged before reuse, so a PostgreSQL restart costs no request once the
    # server is back (R4). Off only to demonstrate the failure (tests/reliability/test_database_restart.py).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("WATCHPOST_DB_CONN_HEALTH_CHECKS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("WATCHPOST_STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = env.path("WATCHPOST_MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media-not-served/"  # evidence is only ever served through the custody-logging view

STORAGES = {
    # Evidence goes through Django's storage API. For S3, set WATCHPOST_EVIDENCE_STORAGE to
    # "storages.backends.s3.S3Storage" and install django-storages (see README "Evidence on S3").
    "default": {
        "BACKEND": env.str("WATCHPOST_EVIDENCE_STORAGE", default="django.core.files.storage.FileSystemStorage")
    },
    "staticfiles": {
        "BACKEND": env.str(
            "WATCHPOST_STATICFILES_STORAGE",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

# django-storages reads these from settings (only used when the evidence storage is S3).
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
AWS_S3_OBJECT_PARAMETERS = {"ServerSideEncryption": "AES256"}
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True  # evidence is never public; downloads go through our view anyway

# --- Security -------------------------------------------------------------------------------------
# Sessions in the database, read through the cache (Redis in production): revocable server-side,
# and no session query on a warm request.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("WATCHPOST_SESSION_AGE_SECONDS", default=8 * 3600)
# A browser session ends after this long without a request (idle), and after the absolute lifetime
# whatever the activity; both are checked on the server (config.middleware.SessionTimeoutMiddleware).
WATCHPOST_SESSION_IDLE_SECONDS = env.int("WATCHPOST_SESSION_IDLE_SECONDS", default=30 * 60)
WATCHPOST_SESSION_ABSOLUTE_SECONDS = env.int("WATCHPOST_SESSION_ABSOLUTE_SECONDS", default=SESSION_COOKIE_AGE)
SESSION_COOKIE_SECURE = env.bool("WATCHPOST_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
if SESSION_COOKIE_SECURE:
    # ASVS 3.3.3: __Host- cookies are only accepted over HTTPS, so only when secure cookies are on.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_HSTS_SECONDS = env.int("WATCHPOST_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.bool("WATCHPOST_HSTS_PRELOAD", default=False)
SECURE_SSL_REDIRECT = env.bool("WATCHPOST_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if env.bool("WATCHPOST_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Failed logins are logged and throttled (django-axes): 5 failures per user and address, 15 min cool-off.
AXES_FAILURE_LIMIT = env.int("WATCHPOST_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("WATCHPOST_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # failed sign-ins kept in the database, visible to admins

# --- Watchpost ------------------------------------------------------------------------------------
WATCHPOST_EVIDENCE_MAX_BYTES = env.int("WATCHPOST_EVIDENCE_MAX_BYTES", default=100 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
WATCHPOST_PLAYBOOK_DIR = env.path("WATCHPOST_PLAYBOOK_DIR", default=str(BASE_DIR / "playbooks" / "library"))
# Time to acknowledge per priority, in minutes (TRIAGE_GUIDE.md severity matrix).
WATCHPOST_ACK_TARGET_MINUTES = {
    1: env.int("WATCHPOST_ACK_TARGET_P1_MINUTES", default=15),
    2: env.int("WATCHPOST_ACK_TARGET_P2_MINUTES", default=60),
    3: env.int("WATCHPOST_ACK_TARGET_P3_MINUTES", default=240),
    4: env.int("WATCHPOST_ACK_TARGET_P4_MINUTES", default=1440),
}
# SLA breach notifications (beat sweep): who gets the email besides the commander and assignees
# (comma-separated; empty: every manager with an email address), and how often the sweep runs.
WATCHPOST_SLA_NOTIFY_EMAILS = env.list("WATCHPOST_SLA_NOTIFY_EMAILS", default=[])
WATCHPOST_SLA_SWEEP_SECONDS = env.int("WATCHPOST_SLA_SWEEP_SECONDS", default=60)
# Absolute links in emails (the notification's "open the case" link).
WATCHPOST_BASE_URL = env.str("WATCHPOST_BASE_URL", default="http://127.0.0.1:8000")
# Outgoing mail (django-environ EMAIL_URL, e.g. smtp+tls://user:pass@mail.example.com:587); the
# embedded default prints mails on the console.
_EMAIL = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST = _EMAIL.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _EMAIL.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _EMAIL.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _EMAIL.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_EMAIL.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_EMAIL.get("EMAIL_USE_SSL"))
# The breach notification sends inside its transaction: a hung mail server must not hold the row lock.
EMAIL_TIMEOUT = env.int("WATCHPOST_EMAIL_TIMEOUT_SECONDS", default=10)
DEFAULT_FROM_EMAIL = env.str("WATCHPOST_FROM_EMAIL", default="watchpost@localhost")
WATCHPOST_LIST_PAGE_SIZE = env.int("WATCHPOST_LIST_PAGE_SIZE", default=50)
# Ingestion: a repeat of a finding whose incident closed less than this long ago reopens it (0: never).
WATCHPOST_REOPEN_WINDOW_HOURS = env.int("WATCHPOST_REOPEN_WINDOW_HOURS", default=72)
# The ingest's hot statements are prepared once per PostgreSQL session (incidents.rows.prepared). Turn off
# behind a pooler that moves a client's transactions between sessions (PgBouncer in transaction mode).
WATCHPOST_DB_PREPARED_STATEMENTS = env.bool("WATCHPOST_DB_PREPARED_STATEMENTS", default=True)
# Grouping (0: off): a new finding of the same type on the same cluster within this window, or a
# SuccessfulAnonymousAccess after an AnonymousAccessGranted there, joins the open incident.
WATCHPOST_GROUP_WINDOW_MINUTES = env.int("WATCHPOST_GROUP_WINDOW_MINUTES", default=0)
# Signed findings webhook: shared secrets for the HMAC signature (comma-separated, to rotate).
WATCHPOST_FINDINGS_WEBHOOK_SECRETS = env.list("WATCHPOST_FINDINGS_WEBHOOK_SECRETS", default=[])
WATCHPOST_WEBHOOK_MAX_BYTES = env.int("WATCHPOST_WEBHOOK_MAX_BYTES", default=5 * 1024 * 1024)
# Largest file `import_findings` and the admin upload read; a larger one is recorded and refused.
WATCHPOST_IMPORT_MAX_BYTES = env.int("WATCHPOST_IMPORT_MAX_BYTES", default=50 * 1024 * 1024)

# --- Celery ---------------------------------------------------------------------------------------
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded broker (DOMAIN.md §5b): the same folder for in and out, created by config.celery.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        # Otherwise kombu writes its exchange table to ./control in whatever folder the worker started.
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Unset, Celery's Django fixup closes every database connection before and after each task, so each task
# that touches the database opens a new PostgreSQL session (a backend fork): ~4 ms of CPU per ingested
# event, more than the ingest's own queries (P3). Set, the fixup closes only every N tasks; around each
# task config.celery recycles connections as Django does around a request (CONN_MAX_AGE, and with
# CONN_HEALTH_CHECKS a ping before reuse, so a PostgreSQL restart still costs no task: R4).
CELERY_DB_REUSE_MAX = env.int("WATCHPOST_CELERY_DB_REUSE_MAX", default=1000)
CELERY_BEAT_SCHEDULE = {
    # Re-hash every piece of evidence daily: tampering in storage shows up on the custody log
    # even when nobody downloads the file.
    "evidence-reverify": {
        "task": "incidents.tasks.evidence_reverify_all_task",
        "schedule": env.int("WATCHPOST_EVIDENCE_REVERIFY_SECONDS", default=24 * 3600),
    },
    # Acknowledgement deadlines passed: one email, timeline row and `sla.breached` event per breach.
    "sla-breach-sweep": {
        "task": "incidents.tasks.sla_breach_sweep_task",
        "schedule": WATCHPOST_SLA_SWEEP_SECONDS,
        "options": {"expires": WATCHPOST_SLA_SWEEP_SECONDS},
    },
    # Playbook action runs whose worker died past the hard time limit go back to the queue.
    "action-runs-sweep": {"task": "playbooks.tasks.action_runs_sweep_task", "schedule": 300},
}

# Reconcile (R3): beat re-enqueues, from the database, payloads left "received" and action runs left
# "queued" for longer than the grace period: work a lost or wiped broker would otherwise drop.
WATCHPOST_RECONCILE_GRACE_SECONDS = env.int("WATCHPOST_RECONCILE_GRACE_SECONDS", default=600)
# A payload re-enqueued this many times and still unprocessed is quarantined (a poison payload).
WATCHPOST_RECONCILE_MAX_ATTEMPTS = env.int("WATCHPOST_RECONCILE_MAX_ATTEMPTS", default=5)
CELERY_BEAT_SCHEDULE["pending-work-reconcile"] = {
    "task": "incidents.tasks.pending_work_reconcile_task",
    "schedule": env.int("WATCHPOST_RECONCILE_INTERVAL_SECONDS", default=300),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # UTC timestamps with the zone spelled out, whatever the host's time zone (S13).
    "formatters": {
        "plain": {"()": "config.logs.UTCFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("WATCHPOST_LOG_LEVEL", default="INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        "watchpost.security": {"level": "INFO"},
    },
}

# --- Ingestion sources ----------------------------------------------------------------------------
# EventBridge → SQS: the queue the rule {"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"]}
# targets. Empty: no consumer is scheduled. Credentials: the worker's default boto3 chain.
WATCHPOST_SQS_QUEUE_URL = env.str("WATCHPOST_SQS_QUEUE_URL", default="")
# A message whose processing keeps failing is quarantined (and deleted) on this receive.
WATCHPOST_SQS_MAX_RECEIVES = env.int("WATCHPOST_SQS_MAX_RECEIVES", default=5)
# Long-poll wait per ReceiveMessage (0–20 s), and how long one consumer run keeps polling (also its beat interval).
WATCHPOST_SQS_WAIT_SECONDS = env.int("WATCHPOST_SQS_WAIT_SECONDS", default=20)
WATCHPOST_SQS_CONSUME_SECONDS = env.int("WATCHPOST_SQS_CONSUME_SECONDS", default=60)
# GuardDuty API poller (accounts, roles and regions are configured in the admin): how often each
# detector is read.
WATCHPOST_POLL_INTERVAL_SECONDS = env.int("WATCHPOST_POLL_INTERVAL_SECONDS", default=300)
# The poller skips findings archived in GuardDuty (suppression rules archive what the team chose to
# silence, and EventBridge never publishes those); true also fetches them.
WATCHPOST_POLL_ARCHIVED = env.bool("WATCHPOST_POLL_ARCHIVED", default=False)
CELERY_BEAT_SCHEDULE.update(
    {
        "guardduty-poll": {
            "task": "incidents.tasks.guardduty_poll_all_task",
            "schedule": WATCHPOST_POLL_INTERVAL_SECONDS,
            # A tick no worker took in time is dropped rather than run late on top of the next one.
            "options": {"expires": WATCHPOST_POLL_INTERVAL_SECONDS},
        },
    }
)
if WATCHPOST_SQS_QUEUE_URL:
    CELERY_BEAT_SCHEDULE.update(
        {
            "sqs-consume": {
                "task": "incidents.tasks.sqs_consume_task",
                "schedule": WATCHPOST_SQS_CONSUME_SECONDS,
                "args": (WATCHPOST_SQS_QUEUE_URL,),
                "options": {"expires": WATCHPOST_SQS_CONSUME_SECONDS},
            },
        }
    )

# --- Investigation queries (issue 5) ----------------------------------------------------------------
# Engine for CloudTrail templates: "duckdb" (embedded: local .json.gz files in the S3 layout) or "athena".
WATCHPOST_QUERY_ENGINE = env.str("WATCHPOST_QUERY_ENGINE", default="duckdb")
WATCHPOST_CLOUDTRAIL_DIR = env.path(
    "WATCHPOST_CLOUDTRAIL_DIR", default=str(BASE_DIR / "incidents" / "demo" / "cloudtrail")
)
# Largest uncompressed CloudTrail file DuckDB reads (one file is one JSON object); larger files are skipped.
WATCHPOST_DUCKDB_MAX_OBJECT_BYTES = env.int("WATCHPOST_DUCKDB_MAX_OBJECT_BYTES", default=256 * 1024 * 1024)
WATCHPOST_DUCKDB_MEMORY_LIMIT = env.str("WATCHPOST_DUCKDB_MEMORY_LIMIT", default="512MB")
WATCHPOST_ATHENA_REGION = env.str("WATCHPOST_ATHENA_REGION", default="")
WATCHPOST_ATHENA_WORKGROUP = env.str("WATCHPOST_ATHENA_WORKGROUP", default="primary")
WATCHPOST_ATHENA_CATALOG = env.str("WATCHPOST_ATHENA_CATALOG", default="AwsDataCatalog")
WATCHPOST_ATHENA_DATABASE = env.str("WATCHPOST_ATHENA_DATABASE", default="default")
WATCHPOST_ATHENA_TABLE = env.str("WATCHPOST_ATHENA_TABLE", default="cloudtrail_logs_pp")
WATCHPOST_ATHENA_OUTPUT_LOCATION = env.str("WATCHPOST_ATHENA_OUTPUT_LOCATION", default="")
WATCHPOST_ATHENA_EXPECTED_BUCKET_OWNER = env.str("WATCHPOST_ATHENA_EXPECTED_BUCKET_OWNER", default="")
# Copy results from the CSV in the result location (one streamed GetObject) instead of GetQueryResults pages.
WATCHPOST_ATHENA_RESULTS_FROM_S3 = env.bool("WATCHPOST_ATHENA_RESULTS_FROM_S3", default=False)
# The trail's S3 location for the setup DDL: s3://<bucket>/AWSLogs/<account>/CloudTrail/<region>.
WATCHPOST_CLOUDTRAIL_S3_LOCATION = env.str("WATCHPOST_CLOUDTRAIL_S3_LOCATION", default="")
WATCHPOST_CLOUDTRAIL_PROJECTION_START = env.str("WATCHPOST_CLOUDTRAIL_PROJECTION_START", default="2020/01/01")
# Athena's list price per TB scanned (us-east-1, engine v3): shown as the running query's estimated cost.
WATCHPOST_ATHENA_PRICE_PER_TB_USD = env.float("WATCHPOST_ATHENA_PRICE_PER_TB_USD", default=5.0)
# A query still running after this long is stopped and its run fails (keep it under CELERY_TASK_TIME_LIMIT).
WATCHPOST_QUERY_TIMEOUT_SECONDS = env.int("WATCHPOST_QUERY_TIMEOUT_SECONDS", default=600)
WATCHPOST_QUERY_PREVIEW_ROWS = env.int("WATCHPOST_QUERY_PREVIEW_ROWS", default=25)
WATCHPOST_QUERY_RESULT_MAX_BYTES = env.int("WATCHPOST_QUERY_RESULT_MAX_BYTES", default=2 * 1024 * 1024 * 1024)
# Region of the EKS clusters' audit log groups when the incident names none.
WATCHPOST_EKS_LOGS_REGION = env.str("WATCHPOST_EKS_LOGS_REGION", default="")
# --- REST API v1 (incidents/api/) and outbound webhooks (integrations/ticketing/) -----------------
REST_FRAMEWORK = {
    # A request with an Authorization header is judged by its token alone; only a request without
    # one may use the browser session (with CSRF). Token clients never authenticate by cookie.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "incidents.api.auth.BearerTokenAuthentication",
        "incidents.api.auth.BrowserSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["incidents.api.auth.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "incidents.api.auth.JsonFirstNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "incidents.api.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Watchpost API",
    "DESCRIPTION": "Incident-response cases for AWS. Authenticate with `Authorization: Bearer <token>`; "
    "see docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its UI sit behind authentication (ASVS 13.4.5).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_AUTHENTICATION": [
        "incidents.api.auth.BearerTokenAuthentication",
        "incidents.api.auth.BrowserSessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "incidents.api.schema.add_problem_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "PhaseEnum": "incidents.models.Phase",
        "ChecklistStatusEnum": "playbooks.models.ChecklistItem.Status",
    },
}
WATCHPOST_API_PAGE_SIZE = env.int("WATCHPOST_API_PAGE_SIZE", default=50)
# Seconds a worker process reuses a verified API token row (0: look it up on every request). A
# revocation in the admin applies at once in that process and within this delay everywhere else.
WATCHPOST_API_TOKEN_CACHE_SECONDS = env.int("WATCHPOST_API_TOKEN_CACHE_SECONDS", default=10)
# Outbound webhooks: attempts before a delivery goes to the dead letter, and the first retry delay
# (doubled each attempt, capped at one hour).
WATCHPOST_WEBHOOK_MAX_ATTEMPTS = env.int("WATCHPOST_WEBHOOK_MAX_ATTEMPTS", default=8)
WATCHPOST_WEBHOOK_BACKOFF_SECONDS = env.float("WATCHPOST_WEBHOOK_BACKOFF_SECONDS", default=30.0)
WATCHPOST_WEBHOOK_TIMEOUT_SECONDS = env.float("WATCHPOST_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# SSRF guard: webhook targets resolving to loopback, private, link-local or metadata addresses are
# refused, except inside these networks (CIDR, comma-separated), e.g. an on-premises Jira at 10.1.2.3/32.
WATCHPOST_WEBHOOK_ALLOWED_NETWORKS = env.list("WATCHPOST_WEBHOOK_ALLOWED_NETWORKS", default=[])
# PEM file of the CAs webhook receivers' certificates are checked against (empty: the system's), for
# an on-premises ticketing system with a private CA.
WATCHPOST_WEBHOOK_CA_BUNDLE = env.str("WATCHPOST_WEBHOOK_CA_BUNDLE", default="")
# How long the previous secret of a subscription still signs deliveries after a rotation.
WATCHPOST_WEBHOOK_ROTATION_OVERLAP_HOURS = env.int("WATCHPOST_WEBHOOK_ROTATION_OVERLAP_HOURS", default=24)
CELERY_BEAT_SCHEDULE["webhook-requeue"] = {
    "task": "integrations.tasks.webhook_requeue_due_task",
    "schedule": 300,
    "options": {"expires": 300},
}
