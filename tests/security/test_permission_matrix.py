"""The permission matrix: every API operation, page, admin URL and admin action x every role, each with the
status it must answer, in ONE table (:data:`MATRIX`).

The entries are generated from the URL conf (Django's resolver walked, as ``tests/security/urlwalk.py`` does):
an API route x each HTTP method its view answers; a page x GET and POST; an admin URL of a registered
``ModelAdmin`` (or of the admin site) x GET; and every action of every registered ``ModelAdmin`` (POSTed to its
change list). A URL or an action without an entry in :data:`MATRIX` fails :func:`test_every_url_and_action_has_an_entry`
with the entry to add; an entry that no longer matches anything fails it too.

Roles: ``anonymous``; ``plain`` (a user, not staff, no permission); ``staff`` (staff, no permission); one staff
user per permission of issue 11 (``run_steps``, ``trade_live``, ``add_strategy``, ``change_strategy``,
``delete_strategy``, ``view_strategy``, ``change_instrument``); ``delete_run`` (staff with
``simulator.delete_simulation`` and ``simulator.delete_sweep``, not the runs' owner); ``viewer`` (staff with
every read: ``tests.accounts.VIEW_ALL``); ``superuser``. API calls send the role's token (``Authorization:
Token``), pages and the admin its session; anonymous sends nothing.

The three step services are stubbed (an allowed call answers 200 at once; the permission code in front of them
is the real one), and so are the admin's "sync now" and "close now" services and the simulator's two delete
services. Objects are real: the URLs take the ids of one saved object of each kind; the simulation belongs to
``plain`` (each user sees only their own runs; a superuser sees every run).

Status codes of admin actions: Django answers an action the user may not run (it is not offered: the model
permission of ``@admin.action(permissions=...)`` is missing) with a redirect and "No action selected."; the
matrix records that as 403, to tell it from a 302 after an action that ran. An action that refuses on its own
(``trade_live``) answers 403 itself.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import URLPattern, get_resolver, include, path
from knox.models import AuthToken
from pytest_django import DjangoDbBlocker

from tests.accounts import VIEW_ALL, api_token, user_with
from tests.security.urlwalk import _methods, _patterns

pytestmark = pytest.mark.django_db

#: The roles, in the order of every row of the table.
ROLES = (
    "anonymous",
    "plain",
    "staff",
    "run_steps",
    "trade_live",
    "add_strategy",
    "change_strategy",
    "delete_strategy",
    "view_strategy",
    "change_instrument",
    "delete_run",
    "viewer",
    "superuser",
)
#: The permissions of each role (staff roles hold exactly these).
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "run_steps": ("trading.run_steps",),
    "trade_live": ("trading.trade_live",),
    "add_strategy": ("trading.add_strategy",),
    "change_strategy": ("trading.change_strategy",),
    "delete_strategy": ("trading.delete_strategy",),
    "view_strategy": ("trading.view_strategy",),
    "change_instrument": ("instruments.change_instrument",),
    "delete_run": ("simulator.delete_simulation", "simulator.delete_sweep"),
    "viewer": VIEW_ALL,
}


def _row(anonymous: int, others: int, **allowed: int) -> dict[str, int]:
    """One row of the table: ``anonymous``'s status, ``others`` for every role not named, and the named roles'
    statuses (``superuser`` must be named when it differs from ``others``)."""
    unknown = set(allowed) - set(ROLES)
    assert not unknown, f"unknown roles {unknown}"
    return {role: anonymous if role == "anonymous" else allowed.get(role, others) for role in ROLES}


def api_any(status: int) -> dict[str, int]:
    """An API operation for every authenticated user: 401 anonymous, ``status`` for the rest."""
    return _row(401, status)


def api_for(status: int, *roles: str, **other: int) -> dict[str, int]:
    """An API operation for ``roles`` and the superuser (``status``); 401 anonymous, 403 the rest."""
    return _row(401, 403, superuser=status, **dict.fromkeys(roles, status), **other)


def page_any(status: int, **other: int) -> dict[str, int]:
    """A page for every logged-in user: anonymous is sent to the login page (302)."""
    return _row(302, status, **other)


def page_for(status: int, *roles: str, **other: int) -> dict[str, int]:
    """A page for ``roles`` and the superuser; anonymous to the login page (302), the rest 403."""
    return _row(302, 403, superuser=status, **dict.fromkeys(roles, status), **other)


def admin_for(status: int, *roles: str, **other: int) -> dict[str, int]:
    """An admin URL or action: anonymous and ``plain`` (not staff) are sent to the login page (302); staff
    without the permission get 403; ``roles`` and the superuser ``status``."""
    return _row(302, 403, plain=302, superuser=status, **dict.fromkeys(roles, status), **other)


def admin_staff(status: int) -> dict[str, int]:
    """An admin URL of the site itself: ``status`` for every staff user; the others to the login page."""
    return _row(302, status, plain=302)


def own_run(status: int, anonymous: int = 302) -> dict[str, int]:
    """A simulation or sweep of ``plain``'s: its owner and the superuser ``status``, any other user 404."""
    return _row(anonymous, 404, plain=status, superuser=status)


def same_for_all(status: int) -> dict[str, int]:
    """The same answer whoever asks (public URLs, methods no view answers)."""
    return _row(status, status)


#: Roles that may read strategies (view or change), and the roles of the trading app in the admin.
STRATEGY_READERS = ("change_strategy", "view_strategy", "viewer")
TRADING_APP = ("add_strategy", "change_strategy", "delete_strategy", "view_strategy", "viewer")
INSTRUMENT_READERS = ("change_instrument", "viewer")

# fmt: off
#: THE table: (method, URL pattern) -> the status of each role (:data:`ROLES`); admin actions are
#: ("ACTION", "<app>.<model>:<action>"), POSTed to the model's change list with one row selected.
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    # -- public -------------------------------------------------------------------------------------------------
    ("GET", "/healthz"): same_for_all(200),
    ("POST", "/healthz"): same_for_all(405),
    ("GET", "/admin/login/"): _row(200, 302, plain=200),  # a logged-in staff user is sent on to the admin
    # -- the API: the steps need trading.run_steps (OPTIONS too: it describes the POST) ----------------------------
    ("POST", "/api/sync_data"): api_for(200, "run_steps"),
    ("OPTIONS", "/api/sync_data"): api_for(200, "run_steps"),
    ("POST", "/api/sync_new_trades"): api_for(200, "run_steps"),
    ("OPTIONS", "/api/sync_new_trades"): api_for(200, "run_steps"),
    ("POST", "/api/sync_close_positions"): api_for(200, "run_steps"),
    ("OPTIONS", "/api/sync_close_positions"): api_for(200, "run_steps"),
    # -- the API: reads need view_<model> or change_<model> ------------------------------------------------------
    **{
        (method, url): api_for(200, *INSTRUMENT_READERS)
        for method in ("GET", "HEAD", "OPTIONS")
        for url in ("/api/instruments/", "/api/instruments.{format}", "/api/instruments/{pk}/",
                    "/api/instruments/{pk}.{format}")
    },
    **{  # candles: the instrument's read and the candles' (view_instrumentohlc): only the viewer holds both
        (method, url): api_for(200, "viewer")
        for method in ("GET", "HEAD", "OPTIONS")
        for url in ("/api/instruments/{pk}/candles/", "/api/instruments/{pk}/candles.{format}")
    },
    **{
        (method, url): api_for(200, "viewer")
        for method in ("GET", "HEAD", "OPTIONS")
        for url in ("/api/history/", "/api/history.{format}", "/api/history/{pk}/", "/api/history/{pk}.{format}",
                    "/api/positions/", "/api/positions.{format}", "/api/positions/{pk}/",
                    "/api/positions/{pk}.{format}")
    },
    **{
        (method, url): api_for(200, *STRATEGY_READERS)
        for method in ("GET", "HEAD", "OPTIONS")
        for url in ("/api/strategies/", "/api/strategies/{pk}/")
    },
    # -- the API: strategy writes (the seeded strategy trades on paper; trade_live: tests/security/
    #    test_permissions.py). POST {} is a 400 with field errors once allowed.
    ("POST", "/api/strategies/"): api_for(400, "add_strategy"),
    ("PATCH", "/api/strategies/{pk}/"): api_for(200, "change_strategy"),
    # -- the API: the API root, the schema and Swagger UI: any user ----------------------------------------------
    **{(method, url): api_any(200) for method in ("GET", "HEAD", "OPTIONS") for url in ("/api/", "/api/.{format}")},
    **{(method, "/api/schema/"): api_any(200) for method in ("GET", "HEAD", "OPTIONS")},
    ("GET", "/api/docs/"): page_any(200),
    ("HEAD", "/api/docs/"): page_any(200),
    ("POST", "/api/docs/"): page_any(405),
    ("OPTIONS", "/api/docs/"): page_any(405),
    # -- the API: simulations, any user, each their own (the superuser every one) -------------------------------
    **{(method, "/api/simulations/"): api_any(200) for method in ("GET", "HEAD", "OPTIONS")},
    ("POST", "/api/simulations/"): api_any(400),  # {}: field errors
    **{
        (method, url): own_run(200, anonymous=401)
        for method in ("GET", "HEAD")
        for url in ("/api/simulations/{pk}/", "/api/simulations/{pk}/trades.csv", "/api/simulations/{pk}/equity.csv")
    },
    **{  # OPTIONS describes the operation; it reads no row
        ("OPTIONS", url): api_any(200)
        for url in ("/api/simulations/{pk}/", "/api/simulations/{pk}/trades.csv", "/api/simulations/{pk}/equity.csv")
    },
    # The Monte Carlo of a run's trades: whoever may read the run. The matrix's run has no trade, so its owner and
    # the superuser get past the checks to 409 ("needs at least 2 closed trades"); any other user 404.
    **{(method, "/api/simulations/{pk}/monte_carlo/"): own_run(409, anonymous=401) for method in ("GET", "HEAD")},
    ("OPTIONS", "/api/simulations/{pk}/monte_carlo/"): api_any(200),
    # Deleting a run needs simulator.delete_simulation (403), then the run must be one's own (404); the service is
    # stubbed (204: it ran).
    ("DELETE", "/api/simulations/{pk}/"): _row(401, 403, delete_run=404, superuser=204),
    # -- the API: sweeps, any user, each their own (the superuser every one) ------------------------------------
    **{(method, "/api/sweeps/"): api_any(200) for method in ("GET", "HEAD", "OPTIONS")},
    ("POST", "/api/sweeps/"): api_any(400),  # {}: field errors
    **{(method, "/api/sweeps/{pk}/"): own_run(200, anonymous=401) for method in ("GET", "HEAD")},
    ("OPTIONS", "/api/sweeps/{pk}/"): api_any(200),  # describes the operation; reads no row
    # Deleting a sweep needs simulator.delete_sweep (403), then the sweep must be one's own (404); stubbed (204).
    ("DELETE", "/api/sweeps/{pk}/"): _row(401, 403, delete_run=404, superuser=204),
    # -- the API: walk-forwards, any user, each their own (the superuser every one) -------------------------------
    **{(method, "/api/walk_forwards/"): api_any(200) for method in ("GET", "HEAD", "OPTIONS")},
    ("POST", "/api/walk_forwards/"): api_any(400),  # {}: field errors
    **{(method, "/api/walk_forwards/{pk}/"): own_run(200, anonymous=401) for method in ("GET", "HEAD")},
    ("OPTIONS", "/api/walk_forwards/{pk}/"): api_any(200),  # describes the operation; reads no row
    # -- the API: portfolio runs, any user, each their own (the superuser every one) ------------------------------
    **{(method, "/api/portfolio_simulations/"): api_any(200) for method in ("GET", "HEAD", "OPTIONS")},
    ("POST", "/api/portfolio_simulations/"): api_any(400),  # {}: field errors
    **{(method, "/api/portfolio_simulations/{pk}/"): own_run(200, anonymous=401) for method in ("GET", "HEAD")},
    ("OPTIONS", "/api/portfolio_simulations/{pk}/"): api_any(200),  # describes the operation; reads no row
    # -- pages: the simulator, any user, each their own runs ----------------------------------------------------
    ("GET", "/simulator/"): page_any(200),
    ("POST", "/simulator/"): page_any(200),  # the form with its errors
    ("GET", "/simulator/rows/new/"): page_any(400),  # no group given
    ("POST", "/simulator/rows/new/"): same_for_all(405),
    ("GET", "/simulator/criteria/"): same_for_all(405),
    ("POST", "/simulator/criteria/"): page_any(200),
    ("GET", "/simulator/sweep-paths/"): same_for_all(405),
    ("POST", "/simulator/sweep-paths/"): page_any(200),
    ("GET", "/simulator/builder/param/"): same_for_all(405),
    ("POST", "/simulator/builder/param/"): page_any(200),  # the builder drawn again, with the new parameter
    ("GET", "/simulator/runs/"): page_any(200),
    ("GET", "/simulator/compare/"): page_any(200),
    ("GET", "/simulator/runs/{pk}/"): own_run(200),
    ("GET", "/simulator/runs/{pk}/progress/"): own_run(200),
    ("GET", "/simulator/runs/{pk}/trades.csv"): own_run(200),
    ("GET", "/simulator/runs/{pk}/equity.csv"): own_run(200),
    ("GET", "/simulator/sweeps/"): page_any(200),
    ("GET", "/simulator/sweeps/{pk}/"): own_run(200),
    ("GET", "/simulator/sweeps/{pk}/progress/"): own_run(200),
    ("GET", "/simulator/sweeps/{pk}/points/{index}/"): own_run(302),  # to the point's run
    ("GET", "/simulator/walk-forwards/"): page_any(200),
    ("GET", "/simulator/walk-forwards/{pk}/"): own_run(200),
    ("GET", "/simulator/walk-forwards/{pk}/progress/"): own_run(200),
    ("GET", "/simulator/portfolios/"): page_any(200),
    ("GET", "/simulator/portfolios/new/"): page_any(200),
    ("POST", "/simulator/portfolios/new/"): page_any(200),  # the form with its errors
    ("GET", "/simulator/portfolios/{pk}/"): own_run(200),
    ("GET", "/simulator/portfolios/{pk}/progress/"): own_run(200),
    **{
        ("POST", url): same_for_all(405)
        for url in ("/simulator/runs/", "/simulator/compare/", "/simulator/sweeps/", "/simulator/runs/{pk}/",
                    "/simulator/runs/{pk}/progress/", "/simulator/runs/{pk}/trades.csv",
                    "/simulator/runs/{pk}/equity.csv", "/simulator/sweeps/{pk}/", "/simulator/sweeps/{pk}/progress/",
                    "/simulator/sweeps/{pk}/points/{index}/", "/simulator/walk-forwards/",
                    "/simulator/walk-forwards/{pk}/", "/simulator/walk-forwards/{pk}/progress/",
                    "/simulator/portfolios/", "/simulator/portfolios/{pk}/",
                    "/simulator/portfolios/{pk}/progress/")
    },
    # "Save as strategy": trading.add_strategy first (403), then the run must be one's own (404); the superuser's
    # empty form is shown again with its error (200).
    # Delete (a run: simulator.delete_simulation; a sweep: simulator.delete_sweep): the permission first (403),
    # then one's own (404); the services are stubbed (302: deleted, to the list). GET never deletes.
    ("POST", "/simulator/runs/{pk}/delete/"): _row(302, 403, delete_run=404, superuser=302),
    ("POST", "/simulator/sweeps/{pk}/delete/"): _row(302, 403, delete_run=404, superuser=302),
    ("GET", "/simulator/runs/{pk}/delete/"): same_for_all(405),
    ("GET", "/simulator/sweeps/{pk}/delete/"): same_for_all(405),
    ("GET", "/simulator/runs/{pk}/strategy/"): same_for_all(405),
    ("POST", "/simulator/runs/{pk}/strategy/"): _row(302, 403, add_strategy=404, superuser=200),
    # "Deploy winners" of a portfolio: proposing needs trading.view_portfolio (or change_portfolio), which only the
    # superuser holds here; POST {} is the form with its errors (200). Confirming needs trading.change_portfolio
    # (403), then the form's errors again (200: no token, nothing applied); GET never confirms.
    # proposing weights needs trading.view_portfolio (the viewer's), applying them change_portfolio
    ("GET", "/simulator/deploy/{pk}/"): page_for(200, "viewer"),
    ("POST", "/simulator/deploy/{pk}/"): page_for(200, "viewer"),
    ("GET", "/simulator/deploy/{pk}/confirm/"): same_for_all(405),
    ("POST", "/simulator/deploy/{pk}/confirm/"): page_for(200),
    # -- pages: the dashboard reads strategies, positions and history ----------------------------------------------
    ("GET", "/"): page_for(200, "viewer"),
    ("POST", "/"): same_for_all(405),
    # -- the admin site -------------------------------------------------------------------------------------------
    ("GET", "/admin/"): admin_staff(200),
    ("GET", "/admin/logout/"): admin_staff(405),  # POST only
    ("GET", "/admin/password_change/"): admin_staff(200),
    ("GET", "/admin/password_change/done/"): admin_staff(200),
    ("GET", "/admin/jsi18n/"): admin_staff(200),
    ("GET", "/admin/autocomplete/"): admin_staff(403),  # no model named
    ("GET", "/admin/r/{content_type_id}/{object_id}/"): admin_staff(404),  # a strategy has no public page
    ("GET", "/admin/{app_label}/"): _row(302, 404, plain=302, superuser=200, **dict.fromkeys(TRADING_APP, 200)),
    ("GET", "/admin/{url}"): admin_staff(404),
    # -- the admin: users, groups and API tokens: the superuser only (nobody else holds their permissions) -------
    **{
        ("GET", f"/admin/{model}/{page}"): admin_for(200)
        for model in ("auth/group", "auth/user", "knox/authtoken")
        for page in ("", "add/", "{object_id}/history/", "{object_id}/delete/", "{object_id}/change/")
        if (model, page) != ("knox/authtoken", "{object_id}/history/")
    },
    ("GET", "/admin/auth/user/{id}/password/"): admin_for(200),
    # Staff see only their own tokens: another's history page is "does not exist" (a redirect to the admin).
    ("GET", "/admin/knox/authtoken/{object_id}/history/"): admin_for(200, **dict.fromkeys(ROLES[2:-1], 302)),
    # -- the admin: instruments (change_instrument may change them, hence see them) ------------------------------
    ("GET", "/admin/instruments/instrument/"): admin_for(200, *INSTRUMENT_READERS),
    ("GET", "/admin/instruments/instrument/add/"): admin_for(200),
    ("GET", "/admin/instruments/instrument/{object_id}/history/"): admin_for(200, *INSTRUMENT_READERS),
    ("GET", "/admin/instruments/instrument/{object_id}/delete/"): admin_for(200),
    ("GET", "/admin/instruments/instrument/{object_id}/change/"): admin_for(200, *INSTRUMENT_READERS),
    # -- the admin: read-only rows (candles, history, positions, orders): no add or delete, not even the superuser
    **{
        ("GET", f"/admin/{model}/{page}"): admin_for(200, "viewer")
        for model in ("instruments/instrumentohlc", "runs/history", "positions/position", "positions/order",
                      "positions/strategyaudit")
        for page in ("", "{object_id}/history/", "{object_id}/change/")
    },
    **{
        ("GET", f"/admin/{model}/{page}"): admin_for(403)
        for model in ("instruments/instrumentohlc", "runs/history", "positions/position", "positions/order",
                      "positions/strategyaudit")
        for page in ("add/", "{object_id}/delete/")
    },
    # -- the admin: strategies -----------------------------------------------------------------------------------
    ("GET", "/admin/trading/strategy/"): admin_for(200, *STRATEGY_READERS),
    ("GET", "/admin/trading/strategy/add/"): admin_for(200, "add_strategy"),
    ("GET", "/admin/trading/strategy/{object_id}/history/"): admin_for(200, *STRATEGY_READERS),
    ("GET", "/admin/trading/strategy/{object_id}/delete/"): admin_for(200, "delete_strategy"),
    ("GET", "/admin/trading/strategy/{object_id}/change/"): admin_for(200, *STRATEGY_READERS),
    # -- the admin: portfolios (issue 16) and each account's risk-limit state (read-only; deleting one resets it,
    # positions.delete_limitstate: only the superuser here) --------------------------------------------------------
    ("GET", "/admin/trading/portfolio/"): admin_for(200, "viewer"),
    ("GET", "/admin/trading/portfolio/add/"): admin_for(200),
    ("GET", "/admin/trading/portfolio/{object_id}/history/"): admin_for(200, "viewer"),
    ("GET", "/admin/trading/portfolio/{object_id}/delete/"): admin_for(200),
    ("GET", "/admin/trading/portfolio/{object_id}/change/"): admin_for(200, "viewer"),
    ("GET", "/admin/positions/limitstate/"): admin_for(200, "viewer"),
    ("GET", "/admin/positions/limitstate/add/"): admin_for(403),
    ("GET", "/admin/positions/limitstate/{object_id}/history/"): admin_for(200, "viewer"),
    ("GET", "/admin/positions/limitstate/{object_id}/delete/"): admin_for(200),
    ("GET", "/admin/positions/limitstate/{object_id}/change/"): admin_for(200, "viewer"),
    # -- the admin: notification channels (from BARTER_NOTIFY_URLS: no add; the seeded one's URL left the setting,
    # so it may be deleted) and deliveries (read-only): only the superuser holds their permissions here ----------
    ("GET", "/admin/notifications/channel/"): admin_for(200),
    ("GET", "/admin/notifications/channel/add/"): admin_for(403),
    ("GET", "/admin/notifications/channel/{object_id}/history/"): admin_for(200),
    ("GET", "/admin/notifications/channel/{object_id}/delete/"): admin_for(200),
    ("GET", "/admin/notifications/channel/{object_id}/change/"): admin_for(200),
    **{
        ("GET", f"/admin/notifications/delivery/{page}"): admin_for(200)
        for page in ("", "{object_id}/history/", "{object_id}/change/")
    },
    **{("GET", f"/admin/notifications/delivery/{page}"): admin_for(403) for page in ("add/", "{object_id}/delete/")},
    # -- the admin: "<id>/" sends everyone on to ".../change/" (which then decides) -------------------------------
    **{
        ("GET", f"/admin/{model}/{{object_id}}/"): same_for_all(302)
        for model in ("auth/group", "auth/user", "knox/authtoken", "instruments/instrument",
                      "instruments/instrumentohlc", "runs/history", "positions/position", "positions/order",
                      "trading/strategy", "trading/portfolio", "positions/limitstate", "positions/strategyaudit",
                      "notifications/channel", "notifications/delivery")
    },
    # -- the admin: django-axes' records of failed logins, read-only: nobody but the superuser holds their view
    # permissions; no add, delete or bulk action, not even for the superuser ------------------------------------
    **{
        ("GET", f"/admin/axes/{model}/{page}"): admin_for(200)
        for model in ("accessattempt", "accessfailurelog", "accesslog")
        for page in ("", "{object_id}/history/", "{object_id}/change/")
    },
    **{
        ("GET", f"/admin/axes/{model}/{page}"): admin_for(403)
        for model in ("accessattempt", "accessfailurelog", "accesslog")
        for page in ("add/", "{object_id}/delete/")
    },
    **{
        ("GET", f"/admin/axes/{model}/{{object_id}}/"): same_for_all(302)
        for model in ("accessattempt", "accessfailurelog", "accesslog")
    },
    # -- admin actions (302: it ran; 200: delete's confirmation page; 403: refused or not offered) -----------------
    ("ACTION", "instruments.instrument:sync_now"): admin_for(302, "change_instrument"),
    ("ACTION", "trading.strategy:enable"): admin_for(302, "change_strategy"),
    ("ACTION", "trading.strategy:disable"): admin_for(302, "change_strategy"),
    ("ACTION", "positions.position:close_now"): admin_for(302),  # positions.change_position: the superuser's
    # notifications.send_test_message and change_channel: the superuser's (the seeded channel is no longer
    # configured: it answers "not sent" without sending anything)
    ("ACTION", "notifications.channel:send_test_message"): admin_for(302),
    # delete_strategy alone cannot open the change list (no view or change permission), so only the superuser.
    **{
        ("ACTION", f"{model}:delete_selected"): admin_for(200)
        for model in ("auth.group", "auth.user", "knox.authtoken", "instruments.instrument", "trading.strategy",
                      "trading.portfolio", "positions.limitstate", "notifications.channel")
    },
    **{
        ("ACTION", f"{model}:delete_selected"): admin_for(403)  # read-only rows: not offered to anybody
        for model in ("instruments.instrumentohlc", "runs.history", "positions.position", "positions.order",
                      "positions.strategyaudit", "axes.accessattempt", "axes.accessfailurelog", "axes.accesslog",
                      "notifications.delivery")
    },
}
# fmt: on


# -- the walk -------------------------------------------------------------------------------------------------

_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")
_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def _key(pattern: str) -> str:
    """A URL pattern as the table writes it: ``/api/instruments/{pk}/``, ``/api/instruments.{format}``."""
    text = _GROUP.sub(lambda m: "{" + m["name"] + "}", pattern)
    text = _PARAM.sub(
        lambda m: (".{" if m["converter"] == "drf_format_suffix" else "{") + m["name"] + "}", text
    )
    text = text.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "")
    return "/" + text


@dataclass(frozen=True)
class Entry:
    """One operation to call: the table's key, and how to call it."""

    method: str
    key: str
    url: str
    kind: str  # "api", "page", "admin" or "action"
    action: str = ""
    model_admin: Any = None


def _fill(key: str, ids: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        return ids[match[1]]

    return re.sub(r"\{(\w+)\}", value, key)


def _admin_of(pattern: str) -> Any:
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin/{model._meta.app_label}/{model._meta.model_name}/"
        if pattern.startswith(prefix):
            return model, model_admin
    return None, None


def walk(objects: dict[str, Any]) -> Iterator[Entry]:
    """Every operation of the URL conf, and every admin action, once (the first pattern claiming a key).

    Args:
        objects: the saved objects (``seeded``): ids for the URLs' parameters.
    """
    seen: set[tuple[str, str]] = set()
    for pattern, url_pattern in _patterns(get_resolver().url_patterns):
        assert isinstance(url_pattern, URLPattern)
        key = _key(pattern)
        model, _ = _admin_of(pattern)
        ids = dict(objects["ids"])
        if "{pk}" in key:
            ids["pk"] = str(objects["pk"][_resource(key)])
        if model is not None:
            ids["object_id"] = str(objects["admin_ids"][model])
        url = _fill(key, ids)
        methods_text, is_drf = _methods(url_pattern.callback)
        if key.startswith("/admin/"):
            kind, methods = "admin", ["GET"]
        elif key == "/api/docs/":
            kind, methods = "page", ["GET", "HEAD", "POST", "OPTIONS"]  # Swagger UI: a page for people
        elif is_drf:
            kind, methods = "api", methods_text.split(",")
        else:
            kind, methods = "page", ["GET", "POST"]
        for method in methods:
            if (method, key) not in seen:
                seen.add((method, key))
                yield Entry(method, key, url, kind)
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        changelist = f"/admin/{opts.app_label}/{opts.model_name}/"
        for name in sorted(_all_actions(model_admin)):
            yield Entry(
                "ACTION",
                f"{opts.app_label}.{opts.model_name}:{name}",
                changelist,
                "action",
                action=name,
                model_admin=model_admin,
            )


def _all_actions(model_admin: Any) -> set[str]:
    """Every action a ``ModelAdmin`` declares (the site's ``delete_selected`` included), before any permission
    filters them out: ``_get_base_actions`` is what ``get_actions`` filters."""
    return {name for _, name, _ in model_admin._get_base_actions()}


# -- the world ------------------------------------------------------------------------------------------------


def _resource(key: str) -> str:
    parts = [p for p in key.split("/") if p]
    if parts and parts[0] in ("api", "simulator") and len(parts) > 1:
        return parts[1].split(".")[0]
    return parts[0] if parts else ""


class _Stub:
    """A stubbed service: records its calls and answers at once."""

    def __init__(self, answer: Any = None, raises: Exception | None = None) -> None:
        self.calls = 0
        self.answer = answer
        self.raises = raises

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.raises is not None:
            raise self.raises
        return self.answer


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[dict[str, Any]]:
    """One saved object of every kind, a user (with a token and a session) per role, and the stubs; set up once
    for the module and flushed after it."""
    from django.core.management import call_command

    from barter_site.errors import ApplicationError
    from instruments.api import SyncDataView
    from instruments.models import Instrument, InstrumentOHLC
    from notifications.models import Channel, Delivery
    from positions.api.steps import SyncClosePositionsView, SyncNewTradesView
    from positions.models import LimitState, Order, Position, StrategyAudit
    from runs.models import History, Step
    from runs.recorder import run_start
    from simulator.models import PortfolioSimulation, RunStatus, Simulation, Sweep, SweepPoint, WalkForward
    from tests.instruments.factories import CandleFactory, InstrumentFactory
    from tests.trading.factories import PositionFactory, StrategyFactory, sma_cross_criteria
    from trading.models import Portfolio, PortfolioStrategy, Strategy

    summary: dict[str, Any] = {"run_id": None, "step": "stub", "status": "ok", "results": [], "errors": []}
    stubs = {
        "steps": _Stub(answer=summary),
        "sync_now": _Stub(answer={"results": []}),
        "close_now": _Stub(raises=ApplicationError("stubbed: not closed")),
    }
    from simulator.services.deletion import SweepDeleted

    stubs["delete_run"] = _Stub()
    stubs["delete_sweep"] = _Stub(answer=SweepDeleted(points=0, simulations=0))
    patch = pytest.MonkeyPatch()
    patch.setattr("simulator.api.simulation_delete", stubs["delete_run"])
    patch.setattr("simulator.views.results.simulation_delete", stubs["delete_run"])
    patch.setattr("simulator.views.results.sweep_delete", stubs["delete_sweep"])
    patch.setattr("simulator.sweeps_api.sweep_delete", stubs["delete_sweep"])
    for view in (SyncDataView, SyncNewTradesView, SyncClosePositionsView):
        patch.setattr(view, "service", staticmethod(stubs["steps"]))
    patch.setattr("instruments.admin.sync_data", stubs["sync_now"])
    patch.setattr("positions.admin.position_close_manual", stubs["close_now"])

    with django_db_blocker.unblock():
        users: dict[str, User] = {
            "plain": user_with("plain"),
            "staff": user_with("staff", is_staff=True),
            "superuser": User.objects.create_superuser("root", password="unused-password-123"),
        }
        for role, perms in ROLE_PERMISSIONS.items():
            users[role] = user_with(role, *perms, is_staff=True)
        tokens = {role: api_token(user) for role, user in users.items()}
        instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
        CandleFactory.create_batch(30, instrument=instrument)
        strategy = StrategyFactory.create(name="sma", instruments=[instrument])
        position = PositionFactory.create(strategy=strategy, instrument=instrument)
        run_start(step=Step.COLLECT, params={})
        order = Order.objects.create(
            strategy=strategy,
            instrument=instrument,
            as_of=date(2024, 3, 1),
            side=Order.Side.BUY,
            purpose=Order.Purpose.ENTRY,
            quantity=Decimal(1),
            exchange_id="binance",
            market_symbol="BTC/USDT",
            client_order_id="bt-matrix-1",
        )
        simulation = Simulation.objects.create(
            created_by=users["plain"],
            start=date(2024, 1, 1),
            end=date(2024, 1, 30),
            starting_cash=Decimal(10000),
            criteria=sma_cross_criteria(),
            status=RunStatus.DONE,
            equity_curve={
                "time": [int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())],
                "equity": [10000.0],
                "buy_and_hold": [10000.0],
                "drawdown_ratio": [0.0],
            },
        )
        simulation.instruments.add(instrument)
        sweep = Sweep.objects.create(
            created_by=users["plain"],
            start=date(2024, 1, 1),
            end=date(2024, 1, 30),
            starting_cash=Decimal(10000),
            criteria=sma_cross_criteria(),
            axes=[{"path": "stop_loss_ratio", "values": [0.05]}],
            status=RunStatus.DONE,
            total=1,
        )
        sweep.instruments.add(instrument)
        SweepPoint.objects.create(sweep=sweep, index=0, values=[0.05], simulation=simulation)
        walk_forward = WalkForward.objects.create(
            created_by=users["plain"],
            start=date(2024, 1, 1),
            end=date(2024, 1, 30),
            starting_cash=Decimal(10000),
            criteria=sma_cross_criteria(),
            axes=[{"path": "stop_loss_ratio", "values": [0.05]}],
            train_days=20,
            test_days=10,
            step_days=10,
            status=RunStatus.DONE,
        )
        walk_forward.instruments.add(instrument)
        portfolio_run = PortfolioSimulation.objects.create(
            created_by=users["plain"],
            start=date(2024, 1, 1),
            end=date(2024, 1, 30),
            starting_cash=Decimal(10000),
            members=[
                {
                    "strategy": strategy.pk,
                    "name": "sma",
                    "weight": 1.0,
                    "criteria": sma_cross_criteria(),
                    "instruments": ["bitcoin"],
                }
            ],
            status=RunStatus.DONE,
        )
        portfolio = Portfolio.objects.create(name="core")
        PortfolioStrategy.objects.create(portfolio=portfolio, strategy=strategy, weight=Decimal("0.5"))
        limit_state = LimitState.objects.create(strategy=strategy, as_of=date(2024, 4, 20))
        audit = StrategyAudit.objects.create(
            strategy=strategy,
            as_of=date(2024, 4, 20),
            run_id=uuid.uuid4(),
            first_day=date(2024, 4, 1),
            missed=[{"instrument": "bitcoin", "signal": "entry", "reason": ""}],
            signal_mismatches=1,
            cash_live=Decimal(1000),
            cash_backtest=Decimal(700),
            cash_drift=Decimal(300),
        )
        group = Group.objects.create(name="traders")
        # django-axes' records (written by axes only; read-only in the admin).
        attempt = AccessAttempt.objects.create(
            username="someone", ip_address="127.0.0.9", user_agent="test", failures_since_start=1
        )
        failure = AccessFailureLog.objects.create(
            username="someone", ip_address="127.0.0.9", user_agent="test"
        )
        access = AccessLog.objects.create(username="someone", ip_address="127.0.0.9", user_agent="test")
        from django.contrib.contenttypes.models import ContentType

        # A notification channel whose URL left BARTER_NOTIFY_URLS (the tests' setting is empty), and a delivery.
        channel = Channel.objects.create(
            key="0" * 64, position=1, label="JSON json://hooks.example.com", configured=False
        )
        delivery = Delivery.objects.create(
            channel=channel, event="digest", key="digest:2024-04-20", title="digest"
        )

        history = History.objects.order_by("id").first()
        assert history is not None
        objects = {
            "users": users,
            "tokens": tokens,
            "pk": {
                "instruments": instrument.pk,
                "strategies": strategy.pk,
                "positions": position.pk,
                "history": history.pk,
                "simulations": simulation.pk,
                "runs": simulation.pk,
                "sweeps": sweep.pk,
                "walk_forwards": walk_forward.pk,
                "walk-forwards": walk_forward.pk,
                "portfolio_simulations": portfolio_run.pk,
                "portfolios": portfolio_run.pk,
                "deploy": portfolio.pk,
            },
            "ids": {
                "format": "json",
                "index": "0",
                "url": "nowhere/",
                "app_label": "trading",
                "id": str(users["plain"].pk),
                "content_type_id": str(ContentType.objects.get_for_model(Strategy).pk),
                "object_id": str(strategy.pk),
            },
            "admin_ids": {
                Instrument: instrument.pk,
                InstrumentOHLC: InstrumentOHLC.objects.order_by("id").first().pk,  # type: ignore[union-attr]
                History: history.pk,
                Position: position.pk,
                Strategy: strategy.pk,
                Order: order.pk,
                Group: group.pk,
                User: users["plain"].pk,
                AuthToken: AuthToken.objects.filter(user=users["superuser"]).get().digest,
                AccessAttempt: attempt.pk,
                AccessFailureLog: failure.pk,
                AccessLog: access.pk,
                Portfolio: portfolio.pk,
                LimitState: limit_state.pk,
                Channel: channel.pk,
                Delivery: delivery.pk,
                StrategyAudit: audit.pk,
            },
            # The rows the actions are applied to (the admin ids, but a plain user's token to delete).
            "selected": {
                Instrument: instrument.pk,
                InstrumentOHLC: InstrumentOHLC.objects.order_by("id").first().pk,  # type: ignore[union-attr]
                History: history.pk,
                Position: position.pk,
                Strategy: strategy.pk,
                Order: order.pk,
                Group: group.pk,
                User: users["plain"].pk,
                AuthToken: AuthToken.objects.filter(user=users["plain"]).get().digest,
                AccessAttempt: attempt.pk,
                AccessFailureLog: failure.pk,
                AccessLog: access.pk,
                Portfolio: portfolio.pk,
                LimitState: limit_state.pk,
                Channel: channel.pk,
                Delivery: delivery.pk,
                StrategyAudit: audit.pk,
            },
            "stubs": stubs,
        }
    yield objects
    patch.undo()
    with django_db_blocker.unblock():
        call_command("flush", "--noinput", verbosity=0)


def _entries(world: dict[str, Any]) -> list[Entry]:
    return list(walk(world))


def _client(world: dict[str, Any], role: str, kind: str) -> Client:
    if role == "anonymous":
        return Client()
    if kind == "api":
        return Client(HTTP_AUTHORIZATION=f"Token {world['tokens'][role]}")
    client = Client()
    client.force_login(world["users"][role])
    return client


def _status(client: Client, entry: Entry, world: dict[str, Any]) -> int:
    if entry.kind == "action":
        model = entry.model_admin.model
        response = client.post(
            entry.url, {"action": entry.action, "_selected_action": [world["selected"][model]], "index": 0}
        )
        # Messages of this request only (the cookie may still hold an earlier request's).
        storage = getattr(response.wsgi_request, "_messages", None)
        assert storage is not None, "django.contrib.messages' middleware sets request._messages"
        added = [str(m) for m in storage._queued_messages]
        if response.status_code == 302 and "No action selected." in added:
            return 403  # not offered to this user: the action's model permission is missing
        confirming = "admin/delete_selected_confirmation.html" in [t.name for t in response.templates]
        if response.status_code == 200 and not confirming:
            return 403  # no action offered at all: Django showed the change list again, nothing ran
        return response.status_code
    if entry.kind == "api":
        unsafe = entry.method in ("POST", "PUT", "PATCH", "DELETE")
        response = client.generic(
            entry.method, entry.url, data=b"{}" if unsafe else b"", content_type="application/json"
        )
    else:
        response = client.generic(entry.method, entry.url)
    return response.status_code


# -- the tests ------------------------------------------------------------------------------------------------


def _missing_and_stale(world: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    entries = {(e.method, e.key) for e in _entries(world)}
    assert len(entries) >= 150  # a floor: the walk must not silently find nothing
    return sorted(entries - set(MATRIX)), sorted(set(MATRIX) - entries)


def test_every_url_and_action_has_an_entry(world: dict[str, Any]) -> None:
    missing, stale = _missing_and_stale(world)
    assert not missing, "add to MATRIX in tests/security/test_permission_matrix.py:\n" + "\n".join(
        f"    {key!r}: <the status of each role>," for key in missing
    )
    assert not stale, f"MATRIX entries that match no URL or action any more (remove them): {stale}"


def _new_endpoint(request: Any) -> Any:
    raise AssertionError("never called")


#: The project's URL conf with one endpoint more, that the table does not know.
urlpatterns = [path("api/new_endpoint", _new_endpoint), path("", include("barter_site.urls"))]


@pytest.mark.urls(__name__)
def test_a_new_url_without_an_entry_is_reported(world: dict[str, Any]) -> None:
    missing, _ = _missing_and_stale(world)

    assert missing == [("GET", "/api/new_endpoint"), ("POST", "/api/new_endpoint")]


def test_every_role_gets_the_status_of_the_table(world: dict[str, Any]) -> None:
    logging.getLogger("django.request").setLevel(logging.ERROR)  # thousands of 4xx: only a 500 is news
    clients = {(role, kind): _client(world, role, kind) for role in ROLES for kind in ("api", "session")}
    wrong = []
    observed: dict[tuple[str, str], dict[str, int]] = {}
    for entry in _entries(world):
        for role in ROLES:
            stubs_before = {name: stub.calls for name, stub in world["stubs"].items()}
            client = clients[(role, "api" if entry.kind == "api" else "session")]
            status = _status(client, entry, world)
            observed.setdefault((entry.method, entry.key), {})[role] = status
            expected = MATRIX.get((entry.method, entry.key), {}).get(role)
            if status != expected:
                wrong.append(f"{entry.method} {entry.key} as {role}: {status}, table says {expected}")
            called = [n for n, stub in world["stubs"].items() if stub.calls != stubs_before[n]]
            # A 302 is a refusal when it sends to a login page (anonymous; a non-staff user in the admin); a page
            # that did its work redirects too (a deleted run: to the list).
            to_login = role == "anonymous" or entry.kind == "admin"
            refused = status in (401, 403, 404, 405) or (status == 302 and to_login)
            if refused and called:
                wrong.append(f"{entry.method} {entry.key} as {role}: {status}, yet {called} ran")
            if entry.method == "POST" and entry.key.startswith("/api/sync_") and status == 200 and not called:
                wrong.append(f"{entry.method} {entry.key} as {role}: 200 without calling the step")
    logging.getLogger("django.request").setLevel(logging.NOTSET)
    if wrong and __import__("os").environ.get("BARTER_MATRIX_PRINT"):
        for key, row in observed.items():
            print(repr(key), row)
    assert not wrong, f"{len(wrong)} answers differ from the table:\n" + "\n".join(wrong)
