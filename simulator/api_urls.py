"""API routes of the simulator (``/api/simulations/``, ``/api/sweeps/``, ``/api/walk_forwards/``,
``/api/portfolio_simulations/``), included under
``api/`` by ``barter_site/urls.py``."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from simulator.api import SimulationViewSet
from simulator.portfolios_api import PortfolioSimulationViewSet
from simulator.sweeps_api import SweepViewSet
from simulator.walk_forwards_api import WalkForwardViewSet

router = SimpleRouter()
router.register("simulations", SimulationViewSet, basename="simulation")
router.register("sweeps", SweepViewSet, basename="sweep")
router.register("walk_forwards", WalkForwardViewSet, basename="walk-forward")
router.register("portfolio_simulations", PortfolioSimulationViewSet, basename="portfolio-simulation")

urlpatterns = [
    # The CSVs end in ".csv" (no trailing slash), so they are routed here rather than as router actions.
    path(
        "simulations/<int:pk>/trades.csv",
        SimulationViewSet.as_view({"get": "trades_csv"}),
        name="simulation-trades-csv",
    ),
    path(
        "simulations/<int:pk>/equity.csv",
        SimulationViewSet.as_view({"get": "equity_csv"}),
        name="simulation-equity-csv",
    ),
    path("", include(router.urls)),
]
