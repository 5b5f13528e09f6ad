"""Page routes of the trading app: the dashboard at ``/``."""

from django.urls import path

from trading.views import dashboard

urlpatterns = [path("", dashboard, name="dashboard")]
