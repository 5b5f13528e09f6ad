"""Barter's Django project package: configuration only (settings, URLs, WSGI, the Celery app)."""

from barter_site.celery_app import app as celery_app

__all__ = ["celery_app"]
