"""API routes of strategies (``/api/strategies/``), included under ``api/`` by ``barter_site/urls.py``."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from trading.api_strategies import StrategyViewSet

# SimpleRouter: the API root view (``/api/``) is the instruments router's; a second one would shadow nothing.
router = SimpleRouter()
router.register("strategies", StrategyViewSet, basename="strategy")

urlpatterns = [path("", include(router.urls))]
