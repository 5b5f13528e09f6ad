"""Who may do what: every permission rule of the API, the admin and the pages, in one place.

Django's own machinery throughout: model permissions (``<app>.<action>_<model>``, given to users and groups in
the admin) and the two custom permissions of ``trading.Strategy.Meta.permissions``:

- ``trading.run_steps``: call the three daily steps (``POST /api/sync_data``, ``/api/sync_new_trades``,
  ``/api/sync_close_positions``). The GitHub Action's token belongs to a user holding only this
  (``manage.py create_cycle_token``).
- ``trading.trade_live``: needed *in addition to* the model permission of the change to create, enable, edit,
  delete or close by hand anything of a strategy whose execution backend is ``exchange``, or to switch a
  strategy's backend to (or from) ``exchange``.

Reads of the API and the dashboard need the matching ``view_<model>`` permission, or ``change_<model>`` (the
admin's rule: who may change may see), of strategies, positions, history, instruments, candles; writes need
``add_``/``change_``/``delete_`` (:class:`ModelPermissions`). Simulations are open to every authenticated user,
each seeing only their own (the simulator's selectors filter by owner); deleting a run or a sweep needs
:data:`DELETE_SIMULATION` / :data:`DELETE_SWEEP` as well (403 without), and then it must be one's own (404
otherwise). A superuser holds every permission.
This module imports no app: the rules name permissions, models and backends as strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from rest_framework import permissions

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from rest_framework.request import Request
    from rest_framework.views import APIView

#: Run the three daily steps.
RUN_STEPS = "trading.run_steps"
#: Trade real money: needed on top of the model permission for anything of an exchange strategy.
TRADE_LIVE = "trading.trade_live"
#: Delete a saved simulator run (one's own; a superuser any): the page's Delete button and the API's DELETE.
DELETE_SIMULATION = "simulator.delete_simulation"
#: Delete a sweep with its grid points and the runs made of them (one's own; a superuser any).
DELETE_SWEEP = "simulator.delete_sweep"
#: The execution backend that trades real money (``trading.models.Strategy.ExecutionBackend.EXCHANGE``).
LIVE_BACKEND = "exchange"


class ModelPermissions(permissions.DjangoModelPermissions):
    """DRF's ``DjangoModelPermissions``, with reads needing a permission too (DRF asks nothing for them).

    ``GET``/``HEAD``/``OPTIONS`` need ``<app>.view_<model>`` or ``<app>.change_<model>`` (as the admin's
    ``has_view_permission``: who may change may see), ``POST`` ``add_``, ``PUT``/``PATCH`` ``change_``,
    ``DELETE`` ``delete_``. An unauthenticated request is 401, an authenticated one without the permission 403.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        """The model permission of the method; a method the view does not answer is let through to its 405."""
        method = (request.method or "").lower()
        if method not in view.http_method_names or not hasattr(view, method):
            return True  # nothing will be done: the view answers 405 Method Not Allowed
        if request.method not in permissions.SAFE_METHODS:
            return bool(super().has_permission(request, view))
        if not request.user or not request.user.is_authenticated:
            return False
        return all(may_view(request.user, model) for model in self.models_read(view))

    def models_read(self, view: APIView) -> list[Any]:
        """The models a read of ``view`` shows: the view's own (subclasses add more)."""
        return [self._queryset(view).model]

    def _queryset(self, view: Any) -> Any:
        # The view's class-level ``queryset`` names the model; DRF would call ``get_queryset()``, which validates
        # the query string first and would answer a user without the permission 400 instead of 403.
        queryset = getattr(view, "queryset", None)
        return queryset if queryset is not None else super()._queryset(view)


def may_view(user: User | AnonymousUser, model: Any) -> bool:
    """Whether ``user`` may read rows of ``model``: ``view_<model>`` or ``change_<model>`` (the admin's rule).

    Args:
        user: the acting user.
        model: a model class, or its label ``"app_label.ModelName"``.
    """
    if isinstance(model, str):
        from django.apps import apps

        model = apps.get_model(model)
    meta = model._meta
    return any(user.has_perm(f"{meta.app_label}.{action}_{meta.model_name}") for action in ("view", "change"))


class RunSteps(permissions.IsAuthenticated):
    """The daily steps' endpoints: an authenticated user holding ``trading.run_steps`` (403 without it)."""

    message = f"running the daily steps needs the permission {RUN_STEPS!r}"

    def has_permission(self, request: Request, view: APIView) -> bool:
        """Whether the request's user may run a step."""
        return super().has_permission(request, view) and request.user.has_perm(RUN_STEPS)


class CandlePermissions(ModelPermissions):
    """An instrument's candles (``/api/instruments/{id}/candles/``): reads of instruments and of candles."""

    def models_read(self, view: APIView) -> list[Any]:
        """The instrument, and its candles (``instruments.InstrumentOHLC``, named here: no app is imported)."""
        from django.apps import apps

        return [*super().models_read(view), apps.get_model("instruments", "InstrumentOHLC")]


class TradeLiveObjects(permissions.BasePermission):
    """Writes to an object whose ``execution_backend`` is ``exchange`` need ``trading.trade_live`` too (403).

    Checked by DRF on ``get_object()`` (PATCH, PUT, DELETE of one object). Switching a backend to ``exchange``
    and creating an exchange object are checked where the new value is known (the serializer), with
    :func:`trade_live_check`.
    """

    message = f"this strategy trades real money (execution backend 'exchange'): writes need {TRADE_LIVE!r}"

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        """Whether the request's user may do this to ``obj``; reads are always let through here."""
        if request.method in permissions.SAFE_METHODS:
            return True
        return may_trade_live(request.user, backends=[getattr(obj, "execution_backend", "")])


def may_trade_live(user: User | AnonymousUser, *, backends: Iterable[str]) -> bool:
    """Whether ``user`` may touch something whose execution backends are ``backends``.

    Args:
        user: the acting user.
        backends: every execution backend involved: the strategy's stored one and, for a change, the new one.

    Returns:
        True when none of them is ``exchange``, or the user holds ``trading.trade_live``.
    """
    return LIVE_BACKEND not in set(backends) or user.has_perm(TRADE_LIVE)


def trade_live_check(user: User | AnonymousUser, *, backends: Iterable[str], what: str) -> None:
    """Refuse, unless :func:`may_trade_live`.

    Args:
        user: the acting user.
        backends: every execution backend involved (see :func:`may_trade_live`).
        what: what was attempted, for the message, e.g. ``"changing strategy 'sma'"``.

    Raises:
        django.core.exceptions.PermissionDenied: the user lacks ``trading.trade_live`` (DRF answers 403 JSON,
            the admin its 403 page).
    """
    if not may_trade_live(user, backends=backends):
        raise PermissionDenied(
            f"{what} trades real money (execution backend 'exchange'): it needs the permission {TRADE_LIVE!r} "
            "besides the model permission"
        )
