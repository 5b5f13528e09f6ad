"""The Celery application. Configuration comes from Django settings (``CELERY_*``).

Without ``REDIS_URL`` every task runs in-process (``CELERY_TASK_ALWAYS_EAGER``), so the embedded default needs
no broker; with it, ``celery -A barter_site worker`` consumes from Redis.
"""

from celery import Celery

from barter_site.settings import select_settings_module

select_settings_module()

app = Celery("barter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
