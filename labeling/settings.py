"""Settings, read from the environment so one build serves the embedded demo and production.

Embedded defaults (no variables set): DEBUG on, SQLite and the Celery broker under ``var/``,
media under ``var/media``. Production sets ``DJANGO_DEBUG=0``, ``SECRET_KEY``,
``DATABASE_URL`` (PostgreSQL), ``CELERY_BROKER_URL`` (Redis) and optionally S3 storage.
"""

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_DEBUG is off.")
    # Only ever used for local demos and tests; production refuses to start without a key.
    SECRET_KEY = "insecure-dev-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" + (",*" if DEBUG else ""))
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "labeling",
    "inspector",
    "simulation",
]

MIDDLEWARE = [
    "labeling.error_pages.StyledNotFoundMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "labeling.urls"
WSGI_APPLICATION = "labeling.wsgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # The web server and the worker write concurrently: wait for the lock instead of failing,
    # take the write lock when a transaction starts (a read that later writes cannot then
    # deadlock with another writer), and let readers run beside the writer (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Static files are served by WhiteNoise so the demo and gunicorn need no extra web server.
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))

# Media: the local filesystem by default; any S3-compatible store when a bucket is named.
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
if os.environ.get("AWS_STORAGE_BUCKET_NAME"):
    default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["AWS_STORAGE_BUCKET_NAME"],
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Upload limits: Django's own request cap, then per-image limits checked in the ingest service.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 2**20))
DATA_UPLOAD_MAX_NUMBER_FILES = int(os.environ.get("DATA_UPLOAD_MAX_NUMBER_FILES", 500))
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
IMAGE_MAX_BYTES = int(os.environ.get("IMAGE_MAX_BYTES", 20 * 2**20))
IMAGE_MAX_PIXELS = int(os.environ.get("IMAGE_MAX_PIXELS", 40_000_000))
IMAGE_MIN_SIDE = int(os.environ.get("IMAGE_MIN_SIDE", 8))
THUMBNAIL_SIZE = int(os.environ.get("THUMBNAIL_SIZE", 256))

# Celery: kombu's filesystem transport under var/ unless a real broker is configured.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    # kombu's filesystem transport needs its folders to exist before anyone publishes.
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged only after it ran, so a killed worker's batch is delivered again;
# every task is idempotent, so a redelivery does no harm.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE

CELERY_BEAT_SCHEDULE = {
    "expire-leases": {"task": "labeling.tasks.expire_leases", "schedule": 60.0},
    "training-triggers": {
        "task": "labeling.machine.tasks.check_training_triggers",
        "schedule": 300.0,
    },
    # New calibration labels keep arriving: thresholds are certified again on them.
    "recertify-thresholds": {
        "task": "labeling.machine.tasks.recertify_thresholds",
        "schedule": 300.0,
    },
    "nightly-training": {
        "task": "labeling.machine.tasks.nightly_training",
        "schedule": crontab(hour=int(os.environ.get("NIGHTLY_TRAINING_HOUR", 2)), minute=0),
    },
    "refit-trust": {
        "task": "labeling.tasks.refit_all_projects",
        "schedule": float(os.environ.get("TRUST_REFIT_SECONDS", 900)),
    },
    # Confident learning over the human labels: contradicted ones go to the recheck queue.
    "review-labels": {
        "task": "labeling.embeddings.tasks.review_all_projects",
        "schedule": float(os.environ.get("LABEL_REVIEW_SECONDS", 6 * 3600)),
    },
    # Embed what an embedding step that failed left out.
    "fill-embeddings": {
        "task": "labeling.embeddings.tasks.fill_active_spaces",
        "schedule": float(os.environ.get("EMBEDDING_FILL_SECONDS", 3600)),
    },
}

# How often a web process returns expired leases to the queue on its own (seconds); leasing
# judges leases by their expiry time, so this only keeps item statuses current between the beat
# task's sweeps. See docs/hot_path.md.
LEASE_SWEEP_SECONDS = float(os.environ.get("LEASE_SWEEP_SECONDS", 10))

PREDICTION_BATCH_SIZE = int(os.environ.get("PREDICTION_BATCH_SIZE", 64))
INFERENCE_THREADS = int(os.environ.get("INFERENCE_THREADS", 2))
TRAIN_THREADS = int(os.environ.get("TRAIN_THREADS", 2))
# Fewest held-out items of a predicted class before it may be auto-labeled at all.
THRESHOLD_MIN_SUPPORT = int(os.environ.get("THRESHOLD_MIN_SUPPORT", 30))
# Fit a model's temperature and per class map on the evidence's calibration side once it holds
# this many items, certifying on the other half (labeling.machine.certification); 0, the
# default, fits them on all held-out labels. Off by default: in the 20,000-image loop at target
# 0.98 it certified less, not more (halving the certifying evidence there left too few items
# for the walk, and the evidence's human label errors pushed the temperature up); docs/loop.md.
CALIBRATION_FIT_MIN = int(os.environ.get("CALIBRATION_FIT_MIN", 0))
# Refit each model's per class confidence map on the project's evidence when it is certified,
# once there are this many evidence items (labeling.machine.recalibration); 0 turns it off.
# Below ~100 items the walk certifies nothing per class anyway, and the map is shrunk towards
# the model's own calibration.
EVIDENCE_RECALIBRATION_MIN = int(os.environ.get("EVIDENCE_RECALIBRATION_MIN", 100))
# How hard that map is pulled towards the model's own calibration (a penalty weight on its slope
# and intercept; ml.calibration.fit_class_calibration). Higher buys robustness to uploads that
# drift in ways the shift guard cannot see (re-compressed photos) at some coverage: at 5, the
# worst class held under re-encoded photos in 100 of 100 resamples (95 of 100 at 1) for 0.7-0.8
# points of coverage offline, 1.3 on the service path (bench/recalibration.py --stream-shift
# reencoded, bench/shift_seeds.py; docs/ml.md), more than the in-distribution goal can spare.
try:
    EVIDENCE_RECALIBRATION_STRENGTH = float(os.environ.get("EVIDENCE_RECALIBRATION_STRENGTH", 1.0))
except ValueError:
    EVIDENCE_RECALIBRATION_STRENGTH = float("nan")
if not EVIDENCE_RECALIBRATION_STRENGTH >= 0:  # NaN or negative would leave the fit unbounded
    raise ImproperlyConfigured(
        "EVIDENCE_RECALIBRATION_STRENGTH must be a number ≥ 0, not "
        f"{os.environ.get('EVIDENCE_RECALIBRATION_STRENGTH')!r}."
    )
# Evidence labels a confident model contradicts go to an expert before they sink a target near
# the humans' own accuracy (labeling.machine.evidence_recheck); at most this many wait at once,
# 0 turns it off. Target mode only.
EVIDENCE_RECHECK_LIMIT = int(os.environ.get("EVIDENCE_RECHECK_LIMIT", 50))
# The training search (see docs/ml.md for the measurements behind the defaults).
TRAIN_INPUT_SIZE = int(os.environ.get("TRAIN_INPUT_SIZE", 96))
TRAIN_TIME_BUDGET_S = float(os.environ.get("TRAIN_TIME_BUDGET_S", 900))
TRAIN_TRAINABLE_BLOCKS = [int(x) for x in env_list("TRAIN_TRAINABLE_BLOCKS", "8")]
TRAIN_EPOCHS = [int(x) for x in env_list("TRAIN_EPOCHS", "8")]
TRAIN_LEARNING_RATES = [float(x) for x in env_list("TRAIN_LEARNING_RATES", "0.002,0.004")]
# Photo augmentation in training (ml.augment): extra cached views per image, and the share of
# each epoch trained on them (bench/learning_curve.py compares it with no augmentation).
TRAIN_AUGMENT_VIEWS = int(os.environ.get("TRAIN_AUGMENT_VIEWS", 2))
MODEL_ROOT = Path(os.environ.get("MODEL_ROOT", VAR_DIR / "models"))
# Shift protection (ml.shift, labeling.machine.shift_guard): the share of ordinary images sent
# to humans as unusual; the p-value level of the images the drift monitor counts as odd, the
# share of odd images it is built to catch; how many ordinary images pass between false alarms.
SHIFT_ALPHA = float(os.environ.get("SHIFT_ALPHA", 0.01))
SHIFT_DRIFT_LEVEL = float(os.environ.get("SHIFT_DRIFT_LEVEL", 0.10))
SHIFT_DRIFT_RATE = float(os.environ.get("SHIFT_DRIFT_RATE", 0.30))
SHIFT_FALSE_ALARM_IMAGES = float(os.environ.get("SHIFT_FALSE_ALARM_IMAGES", 1_000_000))
# Fresh images per window of the shift check's window test (ml.shift; 0 turns it off).
SHIFT_WINDOW = int(os.environ.get("SHIFT_WINDOW", 250))
# The live audit (labeling.machine.audit): the raised audit rate of a suspect class and of every
# class after a shift alarm, until it has passed this many audits.
AUDIT_SUSPECT_RATE = float(os.environ.get("AUDIT_SUSPECT_RATE", 0.25))
AUDIT_PROBATION = int(os.environ.get("AUDIT_PROBATION", 30))
# Largest model archive an admin may upload (an EfficientNet-Lite0 checkpoint is about 14 MB).
MODEL_IMPORT_MAX_BYTES = int(os.environ.get("MODEL_IMPORT_MAX_BYTES", 200 * 2**20))

# Embeddings (docs/embeddings.md): computed in the prediction batch, kept in the database and in
# one usearch index file per project and embedding space under EMBEDDING_INDEX_ROOT.
EMBEDDINGS_ENABLED = env_bool("EMBEDDINGS_ENABLED", True)
# The ImageNet backbone's input size while a project has no model (a model uses its own).
EMBEDDING_INPUT_SIZE = int(os.environ.get("EMBEDDING_INPUT_SIZE", TRAIN_INPUT_SIZE))
EMBEDDING_INDEX_ROOT = Path(os.environ.get("EMBEDDING_INDEX_ROOT", VAR_DIR / "indexes"))
# Rows added since the index file was written, before a worker writes a new file.
EMBEDDING_INDEX_COMPACT_AFTER = int(os.environ.get("EMBEDDING_INDEX_COMPACT_AFTER", 20000))
# Reused photos: the rule's thresholds until a space is calibrated, how many nearest neighbours
# each new image is compared with, and the calibration's goal. The alignment score compares
# pixels, so its threshold carries over between projects (calibrated by bench/duplicates.py);
# the similarity arm is off until a space is calibrated, because what similarity two different
# photos reach depends on the network (a fine-tuned model puts same-class photos at a median of
# 0.989); the hash arm takes only equal hashes (docs/embeddings.md).
REUSE_SIMILARITY = float(os.environ.get("REUSE_SIMILARITY", 2.0))
REUSE_HASH_DISTANCE = int(os.environ.get("REUSE_HASH_DISTANCE", 0))
REUSE_ALIGNED = float(os.environ.get("REUSE_ALIGNED", 0.985))
# The alignment arm costs a worker ~5 ms per new image (bench/duplicates.py); off, a project
# keeps the embedding and hash arms.
REUSE_ALIGNMENT = env_bool("REUSE_ALIGNMENT", True)
REUSE_CANDIDATES = int(os.environ.get("REUSE_CANDIDATES", 10))
REUSE_MAX_FALSE_MATCH = float(os.environ.get("REUSE_MAX_FALSE_MATCH", 0.005))
REUSE_CALIBRATION_IMAGES = int(os.environ.get("REUSE_CALIBRATION_IMAGES", 600))
# Prototype classes: at most this share of other classes' images may be accepted as the new
# class (TL), and at most this share sent to humans as maybe-the-new-class (TH).
PROTOTYPE_FALSE_ACCEPT = float(os.environ.get("PROTOTYPE_FALSE_ACCEPT", 0.005))
PROTOTYPE_HUMAN_SHARE = float(os.environ.get("PROTOTYPE_HUMAN_SHARE", 0.05))
PROTOTYPE_TARGET_RECALL = float(os.environ.get("PROTOTYPE_TARGET_RECALL", 0.95))
PROTOTYPE_NEGATIVES = int(os.environ.get("PROTOTYPE_NEGATIVES", 5000))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: a bad token then answers 401 with WWW-Authenticate, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "labeling.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Image inspection service API",
    "DESCRIPTION": "Ingest images, label them, read decisions.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page describe endpoints only (no project data), so they are public:
    # client generators and API fuzzers can read them without a login.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI's files come from the sidecar package: the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ItemSourceEnum": "labeling.models.items.ItemSource",
        "ThresholdModeEnum": "labeling.models.projects.ThresholdMode",
        "ThresholdScopeEnum": "labeling.models.projects.ThresholdScope",
        "ReusePolicyEnum": "labeling.models.projects.ReusePolicy",
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- Hardening (login throttling, production headers) ---
# The cache holds the login-throttle counters. Several gunicorn workers (and machines) must share
# them, so production sets CACHE_URL (or REDIS_URL) to a Redis database; without one each
# process keeps its own counts in memory, which is fine for the single-process demo.
_CACHE_URL = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL")
if _CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _CACHE_URL,
            "KEY_PREFIX": "labeling",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "app"}
    }
# Every password check goes through this backend: after LOGIN_FAILURES_PER_USER failures for a
# user name (or LOGIN_FAILURES_PER_IP for an address) within the window, logins are refused
# for LOGIN_LOCKOUT_SECONDS; the middleware answers the login forms with a clear 429.
AUTHENTICATION_BACKENDS = ["labeling.throttling.ThrottledModelBackend"]
MIDDLEWARE = [*MIDDLEWARE, "labeling.throttling.LoginThrottleMiddleware"]
LOGIN_FAILURES_PER_USER = int(os.environ.get("LOGIN_FAILURES_PER_USER", 5))
LOGIN_FAILURES_PER_IP = int(os.environ.get("LOGIN_FAILURES_PER_IP", 20))
LOGIN_FAILURE_WINDOW_SECONDS = int(os.environ.get("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60))
LOGIN_LOCKOUT_SECONDS = int(os.environ.get("LOGIN_LOCKOUT_SECONDS", 15 * 60))
# Behind a proxy every request comes from the proxy's address: name the META key of the header
# it sets with the client's address (e.g. HTTP_X_FORWARDED_FOR), and only if it overwrites it.
LOGIN_THROTTLE_IP_HEADER = os.environ.get("LOGIN_THROTTLE_IP_HEADER", "")
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Redis broker: a task whose worker died unacknowledged is delivered again after the visibility
# timeout (kombu's default: one hour). Keep it longer than the longest task (training), or a
# running task is handed to a second worker; the fault tests use a few seconds.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 3600)),
        # How often a worker sweeps for such tasks (kombu: every 10 × 10 s).
        "unacked_restore_interval": int(os.environ.get("CELERY_UNACKED_RESTORE_SECONDS", 100)),
        "unacked_restore_throttle": 1,
        # A sweep holds a lock in Redis while it runs; a worker killed during one leaves the lock
        # to expire (kombu: 300 s) before any other worker may sweep. Harmless beside the hour of
        # visibility; the fault tests, which sweep every second and kill, use a few seconds.
        "unacked_mutex_expire": int(os.environ.get("CELERY_UNACKED_MUTEX_SECONDS", 300)),
    }
