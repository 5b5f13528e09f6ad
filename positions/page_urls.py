"""Page routes of the positions app: the dashboard at ``/``."""

from django.urls import path

from positions.views import dashboard

urlpatterns = [path("", dashboard, name="dashboard")]
