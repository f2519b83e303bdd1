"""Settings of the contacts API on Django REST framework (see shared/API.md).

Twelve-factor: the database comes from DATABASE_URL; there is no state
(no sessions, no auth, no admin), only read-only JSON endpoints.
"""

import os

import dj_database_url

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "bakeoff-peer-not-secret")
DEBUG = False
# The address start.sh listens on (BAKEOFF_HOST, default 127.0.0.1) is the
# Host that clients send (an IPv6 address in brackets); behind a load
# balancer they send the balancer's (BAKEOFF_PUBLIC_HOST, set by the harness
# for several instances).
HOST = os.environ.get("BAKEOFF_HOST", "127.0.0.1")
PUBLIC_HOST = os.environ.get("BAKEOFF_PUBLIC_HOST", "")
ALLOWED_HOSTS = [
    "127.0.0.1",
    "localhost",
    *(f"[{h}]" if ":" in h else h for h in (HOST, PUBLIC_HOST) if h),
]

INSTALLED_APPS = [
    "rest_framework",
    "contacts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "contacts_api.urls"
WSGI_APPLICATION = "contacts_api.wsgi.application"

# Behind PgBouncer in transaction mode (BAKEOFF_POOLER=pgbouncer), each
# transaction may run on another server connection.
POOLED = os.environ.get("BAKEOFF_POOLER") == "pgbouncer"

# DJANGO_DB_POOL=psycopg (../django_psycopg3*/start.sh, which run this
# project from peers/.venv-psycopg3, where Django finds psycopg 3): Django's
# own connection pool (Django >= 5.1, psycopg 3 only), one per worker process.
# Without it (peers/.venv, psycopg2): a connection per thread, kept between
# requests for CONN_MAX_AGE seconds.
PSYCOPG_POOL = os.environ.get("DJANGO_DB_POOL") == "psycopg"

# Persistent connections by default: one per worker thread, kept between
# requests (gunicorn gthread), pooled or not: PgBouncer's transaction mode
# needs no more than server-side cursors off (below), and a connection that
# lives on spares each request its connect (its startup and Django's
# set_config('TimeZone') at each new connection). CONN_MAX_AGE=0 closes each
# request's connection at its end, as Django's documentation asks under ASGI,
# where a connection belongs to the request's context and a persistent one is
# never reused but left open (../django_uvicorn/start.sh sets it). With
# Django's pool, 0 as well (Django refuses a pool with persistent
# connections): the connection goes back to the pool at the request's end.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ["DATABASE_URL"],
        conn_max_age=0 if PSYCOPG_POOL else int(os.environ.get("CONN_MAX_AGE", "600")),
    ),
}
if PSYCOPG_POOL:
    # "pool": True is psycopg_pool.ConnectionPool's defaults: a fixed pool of
    # 4 connections (min_size 4, max_size = min_size), a request waiting at
    # most 30 s for one (Django's documentation, "Connection pool"; psycopg's,
    # "Connection pools": "probably not as large as you imagine"). Four per
    # process is one per gthread thread (THREADS, 4). POOL_SIZE overrides it.
    pool_size = os.environ.get("POOL_SIZE")
    DATABASES["default"]["OPTIONS"] = {
        "pool": {"min_size": int(pool_size)} if pool_size else True,
    }
# Pooled, no server-side cursors, as Django's documentation asks for
# transaction pooling: /contacts/for's .iterator() declares one WITH HOLD
# (autocommit) and fetches from it in later transactions, which may reach
# another server connection, where the cursor does not exist. Without them,
# .iterator(chunk_size=100) runs the same query on an ordinary cursor
# (the driver receives the whole result at once) and reads it 100 rows at a
# time: the same chunks, the same prefetch queries per chunk, the same bytes.
# Prepared statements are no concern: psycopg2 prepares nothing, and Django
# turns psycopg 3's off (prepare_threshold None) unless OPTIONS asks for them.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = POOLED

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
}
