"""Every URL pattern of the project, made concrete: Django's resolver walked, ids filled in.

A new endpoint or page is picked up by the walk without anyone listing it, so the auth tests cover it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")
#: Values of parameters that name no saved object (enough for the URL to resolve to its pattern).
_FIXED = {
    "format": "json",
    "object_id": "1",
    "content_type_id": "1",
    "id": "1",
    "index": "0",
    "url": "nowhere/",
}


@dataclass(frozen=True)
class Route:
    """One URL pattern, concrete: ``url`` starts with ``/``; ``methods`` are the upper-case HTTP methods the
    view answers (DRF views: from its actions or handlers; plain Django views: ``("GET",)``)."""

    url: str
    pattern: str
    methods: tuple[str, ...]
    is_drf: bool


def _patterns(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def _value(name: str, body: str, resource: str, ids: dict[str, int]) -> str:
    if name == "pk":
        return str(ids[resource])
    if name in _FIXED:
        return _FIXED[name]
    if "|" in body:  # an alternation, e.g. the admin's app labels: take the first
        return body.split("|")[0]
    raise KeyError(f"no value for URL parameter {name!r}; add it to tests/security/urlwalk.py")


def _concrete(pattern: str, ids: dict[str, int]) -> str:
    resource = next((part for part in re.split(r"[/^\\.]", pattern.replace("api/", "", 1)) if part), "")
    if resource == "simulator":
        resource = pattern.split("/")[1]

    def route_param(match: re.Match[str]) -> str:
        if match["converter"] == "drf_format_suffix":
            return ".json"
        return _value(match["name"], "", resource, ids)

    def regex_group(match: re.Match[str]) -> str:
        return _value(match["name"], match["body"], resource, ids)

    url = _REGEX_GROUP.sub(regex_group, pattern)
    url = _ROUTE_PARAM.sub(route_param, url)
    url = url.replace("/?", "").replace("^", "").replace("$", "").replace("\\.", ".")
    return "/" + url


def _methods(callback: Callable[..., Any]) -> tuple[str, bool]:
    cls = getattr(callback, "cls", None)
    if cls is None:
        return "GET", False
    allowed = set(cls.http_method_names)
    actions = getattr(callback, "actions", None)
    if actions is not None:
        methods = {m for m in actions if m in allowed}
        if "get" in methods:
            methods.add("head")
        methods.add("options")
    else:
        methods = {m for m in allowed if hasattr(cls, m)}
        if "get" in methods:
            methods.add("head")
    return ",".join(sorted(m.upper() for m in methods)), True


def routes(ids: dict[str, int]) -> list[Route]:
    """Return every routed URL once (the first pattern that claims it), with the ids of ``ids`` filled in.

    Args:
        ids: the primary key to use for ``pk`` by the URL's first segment (``{"instruments": 3, ...}``).
    """
    seen: dict[str, Route] = {}
    for pattern, url_pattern in _patterns(get_resolver().url_patterns):
        url = _concrete(pattern, ids)
        methods, is_drf = _methods(url_pattern.callback)
        seen.setdefault(url, Route(url, pattern, tuple(methods.split(",")), is_drf))
    return list(seen.values())
