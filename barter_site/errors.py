"""The one error hierarchy of Barter, and the one place where the API renders it.

Every domain error derives from :class:`ApplicationError`. The message says what was received and how to fix
it; ``extra`` carries machine-readable details (never secrets). ``retryable`` tells a task runner whether the
same call may succeed later.
"""

from typing import Any

from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """Base of every error Barter raises on purpose.

    Args:
        message: one sentence for a person: what was wrong and how to fix it.
        extra: JSON-serialisable details for machines (ids, field names, received values).
    """

    http_status: int = status.HTTP_400_BAD_REQUEST
    retryable: bool = False

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        """Return ``{"error": type name, "message": ..., **extra}`` for JSON responses and ``History``."""
        return {"error": type(self).__name__, "message": self.message, **self.extra}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render :class:`ApplicationError` as JSON with its 4xx status; defer everything else to DRF.

    DRF's own errors keep its shapes: field errors as ``{"field": ["message"]}``, others as ``{"detail": ...}``.
    """
    if isinstance(exc, ApplicationError):
        if exc.extra.get("field"):
            # Field-level problems use DRF's field-error shape so clients handle one format.
            exc = ValidationError({exc.extra["field"]: [exc.message]})
        else:
            return Response(exc.as_dict(), status=exc.http_status)
    return exception_handler(exc, context)
