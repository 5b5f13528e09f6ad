"""The embedded default: SQLite file and in-process tasks unless DATABASE_URL / REDIS_URL say otherwise."""

from barter_site.settings.base import *  # noqa: F403
from barter_site.settings.environment import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
