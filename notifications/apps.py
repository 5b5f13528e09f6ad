"""The notifications app: tell the trader what happened (Apprise channels), the missed-run alarm, the digest."""

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """``notifications``: the top app; it reads every app below it and none imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self) -> None:
        """Connect the receivers of :data:`runs.signals.run_finished` (the producers of notifications)."""
        from notifications import receivers  # noqa: F401 - connects its receivers on import
