"""Production settings (fly.io). Secrets have no defaults here."""

from barter_site.settings.base import *  # noqa: F403
from barter_site.settings.base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
