# syntax=docker/dockerfile:1
# Barter's image for fly.io (fly.toml). One image, three processes: gunicorn (web, the CMD below), the Celery
# worker and Celery beat (their commands are in fly.toml). `fly deploy` builds it; so does `docker build .`.
# tests/ops/test_deploy.py runs this file's RUN and CMD instructions in a fresh virtual environment.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DJANGO_SETTINGS_MODULE=barter_site.settings.production \
    NUMBA_CACHE_DIR=/app/.numba-cache

WORKDIR /app

# The processes run as this user (uid 10001, named by number below so the runtime need not look it up); it owns
# nothing in the image, so the app cannot rewrite its own code.
RUN groupadd --system --gid 10001 barter \
    && useradd --system --uid 10001 --gid barter --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin barter

# Exactly the locked dependencies, every file checked against its hash; first, so code changes keep the layer.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY . .

# Hashed, compressed static files into STATIC_ROOT for WhiteNoise. Production settings refuse to load without
# their variables, so collectstatic gets throw-away values here; they never reach a running machine.
RUN DJANGO_SECRET_KEY=collectstatic-at-build-time-only DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    DJANGO_ALLOWED_HOSTS=localhost python manage.py collectstatic --noinput

# The engine's compiled code (Numba), made once here rather than in the first simulation or daily step of every
# process; its cache folder is the one thing the app may write (a process re-compiles there after a change).
RUN python -m trading.engine.warmup && chown -R 10001:10001 /app/.numba-cache

USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "barter_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-"]
