"""Content-Security-Policy (django-csp): every response carries it, it allows no inline script, and none of our
templates has inline script or inline event handlers (the browser test, tests/browser/test_csp.py, checks that
the pages work under it with no violation)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from barter_site.settings.base import BASE_DIR
from tests.security.conftest import PASSWORD, Seeded

TEMPLATE_DIRS = [BASE_DIR / "templates", *sorted(BASE_DIR.glob("*/templates"))]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def _policy(header: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in header.split(";")) if d}


@pytest.mark.parametrize(
    "path",
    ["/", "/simulator/", "/simulator/runs/", "/admin/", "/admin/login/", "/api/docs/", "/api/instruments/"],
)
def test_every_response_carries_a_policy_without_inline_script(seeded: Seeded, path: str) -> None:
    client = Client()
    if path != "/admin/login/":
        assert client.login(username="alice", password=PASSWORD)
    response = client.get(path)
    assert response.status_code == 200
    policy = _policy(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["style-src"] and "'unsafe-eval'" not in str(policy)


def test_no_template_of_ours_has_inline_script_or_event_handlers() -> None:
    found = []
    for directory in TEMPLATE_DIRS:
        for template in directory.rglob("*.html"):
            text = template.read_text()
            found += [f"{template.relative_to(BASE_DIR)}: {m.group(0)}" for m in INLINE_SCRIPT.finditer(text)]
            found += [f"{template.relative_to(BASE_DIR)}: {m.group(0)}" for m in EVENT_HANDLER.finditer(text)]
            if "<style" in text:
                found.append(f"{template.relative_to(BASE_DIR)}: <style> element")
    assert found == []


def test_swagger_ui_loads_its_start_up_script_from_a_url(seeded: Seeded) -> None:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    page = client.get("/api/docs/").content.decode()
    assert not INLINE_SCRIPT.search(page) and "<style" not in page
    script = re.search(r'<script src="([^"]*script=[^"]*)"', page)
    assert script is not None
    response = client.get(script.group(1).replace("&amp;", "&"))
    assert response.status_code == 200 and "SwaggerUIBundle" in response.content.decode()
