"""The Celery application. Configuration comes from Django settings (``CELERY_*``).

Without ``REDIS_URL`` every task runs in-process (``CELERY_TASK_ALWAYS_EAGER``), so the embedded default needs
no broker; with it, ``celery -A barter_site worker`` (``make worker``) consumes from Redis, and
``celery -A barter_site beat`` (``make beat``) sends ``trading.daily_cycle`` on ``CELERY_BEAT_SCHEDULE``
(``BARTER_DAILY_CYCLE_CRON``, 00:40 UTC by default): collect fanned out per instrument, then open, then close.
"""

from typing import Any

from celery import Celery

from barter_site.settings import select_settings_module

app = Celery("barter")
# The project's app is Celery's default in every thread, not only in the thread that imported it: otherwise the
# first Celery call in another thread (a request thread of runserver or of gunicorn's threaded workers) makes
# Celery's fallback app, which has no settings (no eager mode, no result backend), and sending fails there
# ("Starting chords requires a result backend").
app.set_default()


@app.on_configure.connect
def _settings_default(sender: Celery, **kwargs: Any) -> None:
    """Default to the local settings when the app configures itself first: under the ``celery`` command, which
    names no settings module. The web process (``wsgi.py``, production by default) and ``manage.py`` (local)
    choose theirs before any task is sent, so importing this package never picks settings for them."""
    select_settings_module()


app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
