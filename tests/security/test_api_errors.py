"""Every API error is JSON: 400, 401, 403, 404, 405, 409, 413, 429, 500 and 503, whether DRF, Django or the
parser answers; pages keep their HTML errors.

Before: an unknown ``/api/`` URL was Django's HTML 404, a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` an HTML 400, a
body nested 931 deep a ``RecursionError`` (500 as an HTML page), an uncaught error an HTML 500.
"""

from __future__ import annotations

import json
from typing import IO, Any, cast

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.test import Client, RequestFactory
from pytest_django import Settings
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from runs.locks import RunInProgressError
from simulator.launch import TaskQueueUnavailableError

pytestmark = pytest.mark.django_db

GOOD_BODY = {
    "instruments": ["bitcoin"],
    "start": "2019-01-01",
    "end": "2019-02-01",
    "criteria": {
        "version": 1,
        "side": "long",
        "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 1}},
    },
}


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("trader", password="unused-password-123")


@pytest.fixture
def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def skip_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a simulation request through the serializer without candles in the database."""
    monkeypatch.setattr(
        "simulator.api.SimulationRequestSerializer.validate", lambda self, attrs: {**attrs, "request": None}
    )


def as_stream(request: HttpRequest) -> IO[bytes]:
    """The request as the stream a parser reads: DRF hands parsers the ``HttpRequest`` itself (file-like, with
    ``read``), which the stubs' ``IO[bytes]`` does not describe."""
    return cast(IO[bytes], request)


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert isinstance(body, dict) and body
    return body


def test_400_malformed_json(api: APIClient) -> None:
    body = assert_json_error(api.post("/api/simulations/", "{", content_type="application/json"), 400)
    assert body["detail"].startswith("JSON parse error")


def test_400_json_nested_too_deep_for_python(api: APIClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000

    body = assert_json_error(api.post("/api/simulations/", deep, content_type="application/json"), 400)

    assert body == {"detail": "JSON parse error - nested more than 200 levels deep; simplify the body"}


def test_400_json_with_nan_is_refused_as_not_json(api: APIClient) -> None:
    text = json.dumps(GOOD_BODY).replace('"value": 1', '"value": NaN')

    assert_json_error(api.post("/api/simulations/", text, content_type="application/json"), 400)


def test_401_without_credentials() -> None:
    assert_json_error(APIClient().get("/api/simulations/"), 401)


def test_403_session_write_without_csrf_token(client: Client, user: User) -> None:
    csrf_checked = Client(enforce_csrf_checks=True)
    csrf_checked.force_login(user)

    response = csrf_checked.post("/api/simulations/", GOOD_BODY, content_type="application/json")

    body = assert_json_error(response, 403)
    assert "CSRF" in body["detail"]


@pytest.mark.parametrize(
    "url", ["/api/nothing-here/", "/api/simulations/999999/", "/api/simulations/x/trades.csv"]
)
def test_404_unknown_api_urls_and_objects(api: APIClient, url: str) -> None:
    assert_json_error(api.get(url), 404)


def test_404_unknown_api_url_is_json_for_anonymous_callers_too() -> None:
    body = assert_json_error(APIClient().get("/api/nothing-here/"), 404)
    assert body == {"detail": "there is no API operation at /api/nothing-here/; /api/docs/ lists them"}


def test_404_of_a_page_stays_html(client: Client) -> None:
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_405_method_not_allowed(api: APIClient) -> None:
    assert_json_error(api.delete("/api/simulations/"), 405)


def test_409_run_in_progress(api: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(**kwargs: Any) -> None:
        raise RunInProgressError("a run of this step is in progress; retry when it has finished")

    monkeypatch.setattr("simulator.api.simulation_start", busy)
    monkeypatch.setattr(
        "simulator.api.SimulationRequestSerializer.validate", lambda self, attrs: {**attrs, "request": None}
    )

    assert_json_error(api.post("/api/simulations/", GOOD_BODY, format="json"), 409)


def test_413_body_over_the_upload_limit(api: APIClient, settings: Settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000

    response = api.post("/api/simulations/", {**GOOD_BODY, "name": "x" * 2_000}, format="json")

    body = assert_json_error(response, 413)
    assert "1,000 bytes accepted (DATA_UPLOAD_MAX_MEMORY_SIZE)" in body["detail"]


def test_413_is_decided_by_the_parser_too_when_django_has_not_read_the_body(
    rf: RequestFactory, settings: Settings
) -> None:
    """On a server DRF reads the body as a stream, which Django's size check never sees."""
    from django.core.exceptions import RequestDataTooBig

    from barter_site.parsers import JSONParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    request = rf.post("/api/simulations/", data=b"[" + b"1," * 100 + b"1]", content_type="application/json")
    del request.META["CONTENT_LENGTH"]  # sent chunked: only reading tells

    with pytest.raises(RequestDataTooBig):
        JSONParser().parse(as_stream(request), parser_context={"request": request})


def test_429_throttled(api: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "1/min", "anon": "1/min"})
    api.get("/api/simulations/")

    assert_json_error(api.get("/api/simulations/"), 429)


def test_500_uncaught_error_is_json(api: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(User.objects.get(username="trader"))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("a defect")

    monkeypatch.setattr("simulator.api.SimulationViewSet.get_queryset", broken)

    body = assert_json_error(client.get("/api/simulations/"), 500)
    assert "request id" in body["detail"]


def test_503_queue_unavailable(api: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(**kwargs: Any) -> None:
        raise TaskQueueUnavailableError("the task queue (Redis at REDIS_URL) did not answer")

    monkeypatch.setattr("simulator.api.simulation_start", down)
    monkeypatch.setattr(
        "simulator.api.SimulationRequestSerializer.validate", lambda self, attrs: {**attrs, "request": None}
    )

    assert_json_error(api.post("/api/simulations/", GOOD_BODY, format="json"), 503)


@pytest.mark.parametrize("parser_name", ["JSONParser", "FormParser", "MultiPartParser"])
def test_every_api_parser_refuses_a_declared_length_over_the_limit_before_reading(
    rf: RequestFactory, settings: Settings, parser_name: str
) -> None:
    from django.core.exceptions import RequestDataTooBig

    import barter_site.parsers

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    request = rf.post(
        "/api/simulations/", data=b"a=" + b"x" * 200, content_type="application/x-www-form-urlencoded"
    )
    parser = getattr(barter_site.parsers, parser_name)()

    with pytest.raises(RequestDataTooBig):
        parser.parse(request, "multipart/form-data; boundary=x", {"request": request})


def test_a_form_encoded_api_body_sent_without_a_length_is_bounded_while_read(
    rf: RequestFactory, settings: Settings
) -> None:
    from django.core.exceptions import RequestDataTooBig

    from barter_site.parsers import FormParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    request = rf.post(
        "/api/simulations/", data=b"a=" + b"x" * 200, content_type="application/x-www-form-urlencoded"
    )
    del request.META["CONTENT_LENGTH"]

    with pytest.raises(RequestDataTooBig):
        FormParser().parse(as_stream(request), parser_context={"request": request})


def test_a_page_form_with_too_many_fields_is_a_400_page_that_says_so(
    client: Client, user: User, settings: Settings
) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    client.force_login(user)

    response = client.post("/simulator/", {f"entry-{n}-op": ">" for n in range(20)})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "the form has more than 10 fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)" in response.content.decode()


def test_with_debug_on_an_unknown_api_url_and_an_uncaught_error_are_still_json(
    api: APIClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make run`` serves with DEBUG on, where Django answers 404 and 500 with its technical HTML pages."""
    settings.DEBUG = True
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(User.objects.get(username="trader"))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("a defect")

    monkeypatch.setattr("simulator.api.SimulationViewSet.get_queryset", broken)

    missing = assert_json_error(api.get("/api/nothing-here/"), 404)
    failed = assert_json_error(client.get("/api/simulations/"), 500)
    page = Client().get("/no-such-page/")

    assert missing == {"detail": "there is no API operation at /api/nothing-here/; /api/docs/ lists them"}
    assert "request id" in failed["detail"]
    assert failed["exception"] == "KeyError: 'a defect'"  # DEBUG only: what the technical page would name
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")  # pages keep Django's
