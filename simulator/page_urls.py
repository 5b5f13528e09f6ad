"""Page routes of the simulator under ``/simulator/`` (included by ``barter_site/urls.py``)."""

from django.urls import path

from simulator import views

app_name = "simulator"

urlpatterns = [
    path("", views.simulator_form, name="form"),
    path("rows/new/", views.condition_row_new, name="row_new"),
    path("criteria/", views.criteria_json, name="criteria_json"),
    path("sweep-paths/", views.sweep_paths, name="sweep_paths"),
    path("runs/", views.run_list, name="runs"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/progress/", views.run_progress, name="run_progress"),
    path("runs/<int:pk>/trades.csv", views.run_trades_csv, name="run_trades_csv"),
    path("runs/<int:pk>/equity.csv", views.run_equity_csv, name="run_equity_csv"),
    path("runs/<int:pk>/strategy/", views.run_save_strategy, name="run_save_strategy"),
    path("compare/", views.run_compare, name="compare"),
    path("sweeps/<int:pk>/", views.sweep_detail, name="sweep"),
    path("sweeps/<int:pk>/progress/", views.sweep_progress, name="sweep_progress"),
    path("sweeps/<int:pk>/points/<int:index>/", views.sweep_point, name="sweep_point"),
]
