"""Who may call what: every ``/api/`` route and every page, found by walking Django's URL resolver.

- anonymous: every method of every API route is 401 (``WWW-Authenticate: Token``); every page redirects to the
  admin login (``LOGIN_URL``), which brings the visitor back (``?next=``);
- a token: every method is allowed (reads answer 200);
- a session login: reads are allowed, unsafe methods without a CSRF token are 403 (with one they pass);
- forms (the simulator, the admin, the login page) refuse a POST without a CSRF token.

Decisions: ``/api/schema/`` needs a token or a session like every API route; so does ``/api/docs/`` (Swagger UI),
but being a page for people it redirects anonymous visitors to the login page instead of answering 401;
``/healthz`` and the login page are public.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from tests.fakes.coingecko import FakeCoinGecko
from tests.security.conftest import PASSWORD, Seeded
from tests.security.urlwalk import Route, routes

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

PUBLIC = {"/healthz", "/admin/login/"}
#: Pages among the /api/ routes: Swagger UI.
API_PAGES = {"/api/docs/"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def walk(seeded: Seeded) -> list[Route]:
    return routes(seeded.ids)


def _api(walk: list[Route]) -> list[Route]:
    found = [r for r in walk if r.url.startswith("/api/") and r.url not in API_PAGES]
    assert all(r.is_drf for r in found), [r.url for r in found if not r.is_drf]
    return found


def _pages(walk: list[Route]) -> list[Route]:
    return [r for r in walk if (not r.url.startswith("/api/") or r.url in API_PAGES) and r.url not in PUBLIC]


# ``extra`` is Any as in Django's ``generic(**extra: Any)``: the WSGI environ entries (``HTTP_X_CSRFTOKEN=...``).
def _call(client: Client, method: str, url: str, **extra: Any) -> _MonkeyPatchedWSGIResponse:
    body: dict[str, str] | None = {} if method in UNSAFE else None
    return client.generic(
        method, url, data=b"{}" if body is not None else b"", content_type="application/json", **extra
    )


@pytest.fixture
def no_network(fake_coingecko: FakeCoinGecko) -> FakeCoinGecko:
    """The sync endpoints run the collect step: CoinGecko is a local fake that knows no coin (404)."""
    return fake_coingecko


def test_the_walk_finds_every_api_route_and_page(walk: list[Route]) -> None:
    # A floor, not a list: the walk must at least see these (it would silently test nothing if it broke).
    urls = {r.url for r in walk}
    for expected in (
        "/api/sync_data",
        "/api/sync_new_trades",
        "/api/sync_close_positions",
        "/api/schema/",
        "/api/strategies/",
        "/api/simulations/",
        "/",
        "/simulator/",
        "/admin/",
    ):
        assert expected in urls
    assert len(_api(walk)) >= 25 and len(_pages(walk)) >= 60


def test_anonymous_is_refused_by_every_api_method(walk: list[Route], no_network: FakeCoinGecko) -> None:
    client = Client()
    calls = 0
    for route in _api(walk):
        for method in route.methods:
            response = _call(client, method, route.url)
            calls += 1
            assert response.status_code == 401, (method, route.url, response.status_code)
            assert response["WWW-Authenticate"] == "Token", (method, route.url)
    assert calls >= 75
    assert not no_network.seen  # nothing ran


def test_a_token_may_call_every_api_method(
    walk: list[Route], seeded: Seeded, no_network: FakeCoinGecko
) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Token {seeded.token}")
    calls = [(method, route.url) for route in _api(walk) for method in route.methods]
    # Every read and write before any DELETE: a row's deletion must not turn another route's read of it
    # (/api/simulations/{id}/monte_carlo/ after DELETE /api/simulations/{id}/) into a 404.
    for method, url in sorted(calls, key=lambda call: call[0] == "DELETE"):
        response = _call(client, method, url)
        assert response.status_code not in (401, 403), (method, url, response.content[:300])
        assert response.status_code < 500, (method, url, response.content[:300])
        if method in ("GET", "HEAD", "OPTIONS"):
            assert response.status_code == 200, (method, url, response.content[:300])


def test_a_wrong_token_is_refused(walk: list[Route], seeded: Seeded) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Token {seeded.token[::-1]}")
    for route in _api(walk):
        response = _call(client, route.methods[0], route.url)
        assert response.status_code == 401, route.url
        assert b"Invalid token." in response.content, route.url  # JSON, or YAML from /api/schema/


def test_a_session_may_read_but_not_write_without_the_csrf_token(
    walk: list[Route], seeded: Seeded, no_network: FakeCoinGecko
) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    unsafe = 0
    for route in _api(walk):
        for method in route.methods:
            response = _call(client, method, route.url)
            if method in UNSAFE:
                unsafe += 1
                assert response.status_code == 403, (method, route.url)
                assert "CSRF" in response.json()["detail"], (method, route.url)
            else:
                assert response.status_code == 200, (method, route.url, response.content[:300])
    assert unsafe >= 6
    assert not no_network.seen  # the refused POSTs to /api/sync_* ran nothing


def test_a_session_with_the_csrf_token_may_write(seeded: Seeded, no_network: FakeCoinGecko) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    client.get("/admin/")  # any page with a form sets the csrftoken cookie
    csrf = client.cookies["csrftoken"].value
    response = _call(client, "PATCH", f"/api/strategies/{seeded.ids['strategies']}/", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200


def test_anonymous_is_sent_to_the_login_page_from_every_page(walk: list[Route]) -> None:
    # A plain Django view does not say which methods it takes: GET and POST are tried. Each page must send an
    # anonymous visitor to the login page for one of them; the other may only be refused (405).
    client = Client()
    pages = _pages(walk)
    for route in pages:
        redirected = 0
        for method in ("GET", "POST"):
            response = client.generic(method, route.url)
            if response.status_code == 405:
                continue
            assert response.status_code == 302, (method, route.url, response.status_code)
            location = urlsplit(response["Location"])
            if route.url == "/admin/logout/":
                assert location.path == "/admin/"  # which sends to the login page (checked in this loop)
            else:
                assert location.path == "/admin/login/", route.url
                assert location.query == f"next={route.url}", route.url
            redirected += 1
        assert redirected, route.url


def test_the_public_urls_answer_anonymous_visitors(walk: list[Route], db: None) -> None:
    client = Client()
    assert client.get("/admin/login/").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)  # 503 names what is down; never a redirect


def test_the_docs_take_a_token_too(seeded: Seeded) -> None:
    response = Client(HTTP_AUTHORIZATION=f"Token {seeded.token}").get("/api/docs/")
    assert response.status_code == 200 and b"swagger-ui" in response.content
    wrong = Client(HTTP_AUTHORIZATION=f"Token {seeded.token[::-1]}").get("/api/docs/")
    assert wrong.status_code == 302 and wrong["Location"] == "/admin/login/?next=/api/docs/"


def test_a_logged_in_user_sees_the_pages(seeded: Seeded) -> None:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    for url in (
        "/",
        "/simulator/",
        "/simulator/runs/",
        f"/simulator/runs/{seeded.ids['runs']}/",
        "/admin/",
        "/api/docs/",
    ):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize(
    "url",
    ["/simulator/", "/admin/instruments/instrument/add/", "/admin/trading/strategy/add/"],
)
def test_forms_refuse_a_post_without_the_csrf_token(seeded: Seeded, url: str) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    response = client.post(url, {"name": "x"})
    assert response.status_code == 403
    assert b"CSRF" in response.content


def test_the_login_form_refuses_a_post_without_the_csrf_token(seeded: Seeded) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    # With the token from the form, the same login works: the refusal was the CSRF check.
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/",
        {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(seeded.user.pk)
