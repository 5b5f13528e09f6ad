"""WSGI entry point (gunicorn ``barter_site.wsgi``)."""

from django.core.wsgi import get_wsgi_application

from barter_site.settings import select_settings_module

select_settings_module("barter_site.settings.production")
application = get_wsgi_application()
