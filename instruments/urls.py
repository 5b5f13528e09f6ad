"""API routes of the instruments app."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from instruments.api import InstrumentViewSet, SyncDataView

router = DefaultRouter()
router.register("instruments", InstrumentViewSet, basename="instrument")

urlpatterns = [
    path("sync_data", SyncDataView.as_view(), name="sync-data"),
    path("", include(router.urls)),
]
