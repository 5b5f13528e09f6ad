"""API routes of the positions app."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from positions.api import PositionViewSet

router = DefaultRouter()
router.register("positions", PositionViewSet, basename="position")

urlpatterns = [path("", include(router.urls))]
