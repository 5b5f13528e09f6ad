"""API routes of the runs app: ``/api/history/``, included under ``api/`` by ``barter_site/urls.py``."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from runs.api import HistoryViewSet

# With format suffixes (``/api/history.json``) like every router's; the API root view (``/api/``) is the
# instruments router's.
router = DefaultRouter()
router.include_root_view = False
router.register("history", HistoryViewSet, basename="history")

urlpatterns = [path("", include(router.urls))]
