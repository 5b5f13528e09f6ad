"""Bounded requests on a real gunicorn (PG): DRF reads a JSON body as a stream there, which Django's own size
check never sees, so the API's parser must bound it; every answer is JSON, nothing is saved, the server lives."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from simulator.models import Simulation
from tests.accounts import api_token
from tests.servers import gunicorn_serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def post(url: str, token: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the local gunicorn
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], json.loads(exc.read())


def test_oversize_and_deep_bodies_on_gunicorn_are_json_4xx_and_save_nothing(tmp_path: Path) -> None:
    token = api_token(User.objects.create_user("abuser"))
    with gunicorn_serving({}, tmp_path / "gunicorn.log") as url:
        big = json.dumps({"instruments": ["bitcoin"], "name": "x" * 3_000_000}).encode()
        deep = b'{"criteria": ' + b'{"not": ' * 931 + b"1" + b"}" * 932
        unknown = urllib.request.Request(f"{url}/api/nothing/", headers={"Authorization": f"Token {token}"})  # noqa: S310

        too_big = post(f"{url}/api/simulations/", token, big)
        too_deep = post(f"{url}/api/simulations/", token, deep)
        malformed = post(f"{url}/api/simulations/", token, b'{"instruments": ')
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(unknown, timeout=30)  # noqa: S310

    assert too_big[0] == 413, too_big
    assert too_big[1] == "application/json"
    assert "larger than the 2,621,440 bytes accepted" in too_big[2]["detail"]
    assert too_deep[:2] == (400, "application/json")
    assert too_deep[2] == {"detail": "JSON parse error - nested more than 200 levels deep; simplify the body"}
    assert malformed[:2] == (400, "application/json")
    assert missing.value.code == 404
    assert missing.value.headers["Content-Type"] == "application/json"
    assert not Simulation.objects.exists()
