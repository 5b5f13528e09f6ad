"""API routes of the positions app: positions (read-only) and the open and close steps."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from positions.api.positions import PositionViewSet
from positions.api.steps import SyncClosePositionsView, SyncNewTradesView

router = DefaultRouter()
router.register("positions", PositionViewSet, basename="position")

urlpatterns = [
    path("sync_new_trades", SyncNewTradesView.as_view(), name="sync-new-trades"),
    path("sync_close_positions", SyncClosePositionsView.as_view(), name="sync-close-positions"),
    path("", include(router.urls)),
]
