"""The API's parsers: DRF's, bounded in size (and JSON in nesting), so that no body can reach a 500.

DRF's own parser reads the request stream directly, which skips Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` check on
a server (Django checks it only for ``request.body`` and form data), and decodes any nesting: 931 levels of
``{"not": ...}`` reached a ``RecursionError`` in the criteria checks (a 500 as an HTML page). These parsers:

- refuse a body (JSON, form or multipart) over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes with Django's
  ``RequestDataTooBig`` (by its ``Content-Length`` before reading, or while reading a body sent without one), which
  :func:`barter_site.errors.api_exception_handler` answers as a JSON 413;
- refuse JSON nested deeper than :data:`MAX_BODY_DEPTH` (or too deep for Python's decoder) with a 400
  ``ParseError``. 200 is well above the criteria's own limit (``trading.engine.limits.MAX_DEPTH``, 32), so a
  criteria document between the two gets the criteria's field error with its path, and well below what
  recursive code (DRF's ``JSONField``, the JSON encoder, about 1,000 frames) can take.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json as drf_json

#: The deepest nesting of objects and lists a JSON body may have.
MAX_BODY_DEPTH = 200


def _too_deep(document: Any, limit: int) -> bool:
    """True when objects and lists nest deeper than ``limit`` in ``document`` (walked without recursion)."""
    stack = [(document, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            if level > limit:
                return True
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


def body_too_big(size: int | None = None) -> RequestDataTooBig:
    """Django's error for a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, with a message that names the limit."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    received = f"{size:,} bytes" if size is not None else "more than that"
    return RequestDataTooBig(
        f"the request body is larger than the {limit:,} bytes accepted (DATA_UPLOAD_MAX_MEMORY_SIZE); "
        f"received {received}: send a smaller body"
    )


def _declared_size_check(context: Mapping[str, Any]) -> None:
    """Refuse a body whose ``Content-Length`` is over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, before reading it."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    request = context.get("request")
    if request is None or limit is None:
        return
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        declared = 0
    if declared > limit:
        raise body_too_big(declared)


def _bounded_read(stream: IO[bytes] | None, context: Mapping[str, Any]) -> bytes:
    """Read the body, at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (a body sent without a length included).

    Raises:
        RequestDataTooBig: the body is longer.
    """
    _declared_size_check(context)
    if stream is None:
        return b""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    raw = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(raw) > limit:
        raise body_too_big()
    return raw


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with a size limit (``DATA_UPLOAD_MAX_MEMORY_SIZE``) and a nesting limit
    (:data:`MAX_BODY_DEPTH`).

    Raises:
        RequestDataTooBig: the body is over the size limit (rendered as 413 JSON).
        ParseError: the body is not JSON, or nests too deeply (400 JSON).
    """

    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes of ``stream`` and decode them as JSON."""
        context = dict(parser_context or {})
        encoding = parsers.get_encoding(context)  # type: ignore[attr-defined]  # DRF 3.16, not in its stubs
        raw = _bounded_read(stream, context)
        try:
            text = raw.decode(encoding)
            data = drf_json.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - nested more than {MAX_BODY_DEPTH} levels deep; simplify the body"
            ) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if _too_deep(data, MAX_BODY_DEPTH):
            raise ParseError(
                f"JSON parse error - nested more than {MAX_BODY_DEPTH} levels deep; simplify the body"
            )
        return data


class FormParser(parsers.FormParser):
    """DRF's form parser, reading at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (DRF's reads any length).

    Raises:
        RequestDataTooBig: the body is over the size limit (rendered as 413 JSON).
    """

    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        """The form fields of a bounded body as a ``QueryDict``."""
        context = dict(parser_context or {})
        encoding = parsers.get_encoding(context)  # type: ignore[attr-defined]  # DRF 3.16, not in its stubs
        return QueryDict(_bounded_read(stream, context), encoding=encoding)


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser, refusing a ``Content-Length`` over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` first: no API
    operation takes files, and Django bounds only a multipart body's fields, not its files.

    Raises:
        RequestDataTooBig: the body is over the size limit (rendered as 413 JSON).
    """

    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        """DRF's multipart parsing of a body within the limit."""
        _declared_size_check(dict(parser_context or {}))
        return super().parse(stream, media_type, parser_context)  # type: ignore[arg-type]  # DRF passes None for no body
