"""The one error hierarchy of Barter, and the one place where the API renders it.

Every domain error derives from :class:`ApplicationError`. The message says what was received and how to fix
it; ``extra`` carries machine-readable details (never secrets). ``retryable`` tells a task runner whether the
same call may succeed later.
"""

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.db import Error as DatabaseDriverError
from django.db import InterfaceError, OperationalError, connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """Base of every error Barter raises on purpose.

    Args:
        message: one sentence for a person: what was wrong and how to fix it.
        extra: JSON-serialisable details for machines (ids, field names, received values).

    Attributes:
        http_status: the API's status for it.
        retryable: whether the same call may succeed later.
        retry_after_seconds: when set, the API sends it as ``Retry-After`` (seconds).
    """

    http_status: int = status.HTTP_400_BAD_REQUEST
    retryable: bool = False
    retry_after_seconds: int | None = None

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    @property
    def code(self) -> str:
        """The ``error`` field of the JSON form: the class name unless a subclass says otherwise."""
        return type(self).__name__

    def as_dict(self) -> dict[str, Any]:
        """Return ``{"error": code, "message": ..., **extra}`` for JSON responses and ``History``."""
        return {"error": self.code, "message": self.message, **self.extra}


class DatabaseUnavailableError(ApplicationError):
    """The database is unreachable or dropped the connection; rendered as 503 ``DatabaseUnavailable``."""

    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    retryable = True
    retry_after_seconds = 30

    @property
    def code(self) -> str:
        return "DatabaseUnavailable"


def database_unavailable(exc: Exception, *, during: str = "") -> DatabaseUnavailableError:
    """Return the :class:`DatabaseUnavailableError` for a driver's connection error, naming the database.

    The message names the engine, host, port and database (never the user or password) and quotes the first
    line of the driver's message with the password, if any, masked.

    Args:
        exc: the ``OperationalError`` or ``InterfaceError`` raised.
        during: what was being done, e.g. ``"the collect run for 2024-12-03"``.
    """
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        where = f"SQLite database {db.get('NAME')}"
    else:
        where = (
            f"{connection.vendor} database {db.get('NAME')!r} at {db.get('HOST') or 'localhost'}:"
            f"{db.get('PORT') or 'default port'}"
        )
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if db.get("PASSWORD"):
        detail = detail.replace(str(db["PASSWORD"]), "***")
    during_text = f" during {during}" if during else ""
    return DatabaseUnavailableError(
        f"the {where} is unavailable or dropped the connection{during_text} ({type(exc).__name__}: "
        f"{detail}); what was committed before is kept: retry when the database is back, and the next run "
        "completes the work",
        extra={"retryable": True},
    )


def database_gone(exc: BaseException) -> bool:
    """True when ``exc`` is a database error that lost the connection (dropped, terminated, server shut down).

    Such an error ends the whole run: its session, and with it the run lock, is gone (Django may open a new
    connection, but the run must not go on unlocked). Other database errors (a deadlock, a constraint) are one
    item's failure. Lost means SQLSTATE class 08 (connection exception) or 57P (operator intervention), or a
    connection that no longer answers.
    """
    if not isinstance(exc, DatabaseDriverError):
        return False
    sqlstate = str(getattr(exc.__cause__, "sqlstate", None) or "")
    return sqlstate.startswith(("08", "57P")) or not connection.is_usable()


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render :class:`ApplicationError` as JSON with its status; defer everything else to DRF.

    A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``RequestDataTooBig``) answers 413 ``{"detail": ...}``, another
    ``SuspiciousOperation`` (too many fields) or a ``RecursionError`` 400. A database that is unreachable or drops
    the connection (``OperationalError``, ``InterfaceError``) answers 503 ``{"error": "DatabaseUnavailable",
    "message": ...}`` instead of a 500. An error with
    ``retry_after_seconds`` (409 ``RunInProgressError``, 503) carries a ``Retry-After`` header. DRF's own
    errors keep its shapes: field errors as ``{"field": ["message"]}``, others as ``{"detail": ...}``.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        exc = database_unavailable(exc, during="this request")
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": request_too_large_message(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    if isinstance(exc, SuspiciousOperation):  # too many fields, a malformed multipart body, ...
        return Response({"detail": str(exc) or type(exc).__name__}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(
        exc, RecursionError
    ):  # nothing should recurse this deep (limits are checked first): never a 500
        return Response(
            {"detail": "the request nests too deeply; simplify it"}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, ApplicationError):
        if exc.extra.get("field"):
            # Field-level problems use DRF's field-error shape so clients handle one format.
            exc = ValidationError({exc.extra["field"]: [exc.message]})
        else:
            response = Response(exc.as_dict(), status=exc.http_status)
            if exc.retry_after_seconds is not None:
                response["Retry-After"] = str(exc.retry_after_seconds)
            return response
    return exception_handler(exc, context)


# Error pages: JSON under /api/, HTML elsewhere --------------------------------------------------------------

#: Paths answered with JSON errors: the API. Its Swagger page (/api/docs/) is a page for people.
API_PREFIX = "/api/"
API_PAGES = ("/api/docs/",)


def is_api_request(request: HttpRequest) -> bool:
    """True when ``request`` is for the API (``/api/...``, except the Swagger page), whose errors are JSON."""
    return request.path.startswith(API_PREFIX) and not request.path.startswith(API_PAGES)


def request_too_large_message(exc: BaseException | None = None) -> str:
    """The message of a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (the parser's, when it has one)."""
    text = str(exc or "")
    if text.startswith("the request body"):
        return text
    return (
        f"the request body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes accepted "
        "(DATA_UPLOAD_MAX_MEMORY_SIZE): send a smaller body"
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: a request Django refused before the view (``SuspiciousOperation``).

    A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is 413, anything else 400; JSON ``{"detail": ...}`` under
    ``/api/``, an HTML page elsewhere whose first paragraph says what was wrong (the simulator's script shows it
    next to the form).
    """
    too_large = isinstance(exception, RequestDataTooBig)
    code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if too_large else status.HTTP_400_BAD_REQUEST
    if too_large:
        message = request_too_large_message(exception)
    elif isinstance(exception, TooManyFieldsSent):
        message = (
            f"the form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields "
            "(DATA_UPLOAD_MAX_NUMBER_FIELDS): send fewer"
        )
    else:
        message = f"the request was refused: {exception or 'it is malformed'}"
    if is_api_request(request):
        return JsonResponse({"detail": message}, status=code)
    title = "Request too large" if too_large else "Bad request"
    hint = ""
    if too_large:
        hint = "If this was the simulator form, its criteria are far larger than any simulation accepts."
    elif isinstance(exception, TooManyFieldsSent):
        hint = "If this was the simulator form, it has too many condition rows: use the JSON box instead."
    context = {"title": title, "status": code, "message": message, "hint": hint}
    return HttpResponse(render_to_string("request_refused.html", context, request=request), status=code)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler403``: JSON ``{"detail": ...}`` under ``/api/``, Django's page elsewhere."""
    if is_api_request(request):
        return JsonResponse(
            {"detail": str(exception) or "You do not have permission to perform this action."},
            status=status.HTTP_403_FORBIDDEN,
        )
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: JSON ``{"detail": ...}`` naming the path under ``/api/``, Django's page elsewhere."""
    if is_api_request(request):
        return JsonResponse(
            {"detail": f"there is no API operation at {request.path}; /api/docs/ lists them"},
            status=status.HTTP_404_NOT_FOUND,
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: JSON under ``/api/`` (the request id, in the ``Fly-Request-Id`` header, finds the log
    line), Django's page elsewhere."""
    if is_api_request(request):
        return JsonResponse(
            {"detail": "internal error; it is logged with this response's request id (Fly-Request-Id)"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return defaults.server_error(request)


class ApiErrorsAsJsonMiddleware:
    """Keep every API error JSON when ``DEBUG`` is on (``make run``).

    With ``DEBUG = True`` Django answers an unknown URL and an unhandled exception with its technical HTML pages
    instead of ``handler404`` and ``handler500`` (``django.core.handlers.exception.response_for_exception``), so
    an API client of the embedded mode would get HTML. Under ``/api/`` (not the Swagger page) such an HTML 404 or
    500 is replaced with the JSON of :func:`page_not_found` or :func:`server_error`; the traceback stays in the
    log. Since only ``DEBUG`` gets here, a 500 also names the exception (``"exception": "KeyError: 'x'"``), as
    the technical page would, without the page's settings and headers. With ``DEBUG = False`` the handlers
    already answer JSON and this changes nothing.
    """

    EXCEPTION_ATTRIBUTE = "_barter_uncaught_exception"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        html = response.get("Content-Type", "").startswith("text/html")
        if not (html and is_api_request(request)):
            return response
        if response.status_code == status.HTTP_404_NOT_FOUND:
            return page_not_found(request, Http404())
        if response.status_code == status.HTTP_500_INTERNAL_SERVER_ERROR:
            json_response = server_error(request)
            exc = getattr(request, self.EXCEPTION_ATTRIBUTE, None)
            if exc is not None:
                body = json.loads(json_response.content)
                body["exception"] = f"{type(exc).__name__}: {exc}"
                json_response = JsonResponse(body, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
            return json_response
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Remember a view's uncaught exception for the JSON 500; Django still logs and handles it."""
        setattr(request, self.EXCEPTION_ATTRIBUTE, exception)
