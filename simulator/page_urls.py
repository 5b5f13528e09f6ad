"""Page routes of the simulator under ``/simulator/`` (included by ``barter_site/urls.py``)."""

from django.urls import path

from simulator.views import deploy, form, portfolios, results

app_name = "simulator"

urlpatterns = [
    path("", form.simulator_form, name="form"),
    path("rows/new/", form.condition_row_new, name="row_new"),
    path("criteria/", form.criteria_json, name="criteria_json"),
    path("sweep-paths/", form.sweep_paths, name="sweep_paths"),
    path("builder/param/", form.builder_param, name="builder_param"),
    path("runs/", results.run_list, name="runs"),
    path("runs/<int:pk>/", results.run_detail, name="run"),
    path("runs/<int:pk>/progress/", results.run_progress, name="run_progress"),
    path("runs/<int:pk>/trades.csv", results.run_trades_csv, name="run_trades_csv"),
    path("runs/<int:pk>/equity.csv", results.run_equity_csv, name="run_equity_csv"),
    path("runs/<int:pk>/strategy/", results.run_save_strategy, name="run_save_strategy"),
    path("runs/<int:pk>/delete/", results.run_delete, name="run_delete"),
    path("compare/", results.run_compare, name="compare"),
    path("sweeps/", results.sweep_list, name="sweeps"),
    path("sweeps/<int:pk>/", results.sweep_detail, name="sweep"),
    path("sweeps/<int:pk>/progress/", results.sweep_progress, name="sweep_progress"),
    path("sweeps/<int:pk>/points/<int:index>/", results.sweep_point, name="sweep_point"),
    path("sweeps/<int:pk>/delete/", results.sweep_delete_view, name="sweep_delete"),
    path("walk-forwards/", results.walk_forward_list, name="walk_forwards"),
    path("walk-forwards/<int:pk>/", results.walk_forward_detail, name="walk_forward"),
    path("walk-forwards/<int:pk>/progress/", results.walk_forward_progress, name="walk_forward_progress"),
    path("portfolios/", portfolios.portfolio_list, name="portfolios"),
    path("portfolios/new/", portfolios.portfolio_form, name="portfolio_new"),
    path("portfolios/<int:pk>/", portfolios.portfolio_detail, name="portfolio"),
    path("portfolios/<int:pk>/progress/", portfolios.portfolio_progress, name="portfolio_progress"),
    path("deploy/<int:pk>/", deploy.portfolio_deploy, name="portfolio_deploy"),
    path(
        "deploy/<int:pk>/confirm/",
        deploy.portfolio_deploy_confirm,
        name="portfolio_deploy_confirm",
    ),
]
