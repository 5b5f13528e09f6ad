"""The project package as a Django app: it holds the API token admin and the migration of the old DRF tokens."""

from django.apps import AppConfig


class BarterSiteConfig(AppConfig):
    """``barter_site``: configuration, plus what every app shares (errors, permissions, the token admin)."""

    name = "barter_site"
    verbose_name = "Barter site"

    def ready(self) -> None:
        """Register the OpenAPI description of the token authentication (drf-spectacular's extension)."""
        from barter_site import api_schema  # noqa: F401  # registers by being defined
