"""API tokens (django-rest-knox): hashed at rest, shown once, with expiry and revocation; the DRF tokens of an
existing deployment migrated so the deployed GitHub Action keeps working; ``manage.py create_cycle_token``."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from knox.models import AuthToken
from pytest_django import Settings
from rest_framework.test import APIClient

from tests.accounts import RUN_STEPS, VIEW_ALL, api_token, permissions, user_with

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 12, 3, 0, 40, tzinfo=UTC)


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _admin(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _superuser() -> Any:
    return get_user_model().objects.create_superuser("boss", password="unused-password-123")


# Hashed at rest, expiry, revocation -------------------------------------------------------------------------


def test_only_the_digest_of_a_token_is_stored() -> None:
    key = api_token(user_with("reader", *VIEW_ALL))

    (row,) = AuthToken.objects.all()
    assert row.digest == hashlib.sha512(key.encode()).hexdigest()
    assert key not in {row.digest, row.token_key}  # token_key is knox's 15-character lookup prefix
    assert _client(key).get("/api/instruments/").status_code == 200


def test_an_expired_token_is_refused_and_removed() -> None:
    with time_machine.travel(T0, tick=False) as clock:
        key = api_token(user_with("reader", *VIEW_ALL), expiry_days=1)
        assert _client(key).get("/api/instruments/").status_code == 200
        clock.shift(timedelta(days=1, seconds=1))
        response = _client(key).get("/api/instruments/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert not AuthToken.objects.exists()


def test_a_key_that_is_not_utf8_is_a_401_not_a_500() -> None:
    response = Client(raise_request_exception=False).get(
        "/api/instruments/", HTTP_AUTHORIZATION="Token \xe9t\xe9"
    )

    assert response.status_code == 401
    assert "invalid characters" in response.json()["detail"]


def test_the_default_expiry_is_the_setting(settings: Settings) -> None:
    settings.BARTER_API_TOKEN_EXPIRY_DAYS = 7
    with time_machine.travel(T0, tick=False):
        api_token(user_with("reader"))
    assert AuthToken.objects.get().expiry == T0 + timedelta(days=7)


def test_deleting_a_token_in_the_admin_revokes_it() -> None:
    key = api_token(user_with("reader", *VIEW_ALL))
    digest = AuthToken.objects.get().digest

    response = _admin(_superuser()).post(f"/admin/knox/authtoken/{digest}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert _client(key).get("/api/instruments/").status_code == 401


def test_the_admin_never_shows_a_key_nor_its_lookup_prefix() -> None:
    key = api_token(user_with("reader"))
    row = AuthToken.objects.get()
    admin = _admin(_superuser())

    pages = [
        admin.get("/admin/knox/authtoken/"),
        admin.get(f"/admin/knox/authtoken/{row.digest}/change/"),
    ]
    searched = admin.get(f"/admin/knox/authtoken/?q={row.token_key}")  # the key's prefix finds nothing
    assert searched.context["cl"].result_count == 0

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert key not in html and row.token_key not in html
        assert 'name="token_key"' not in html and 'name="digest"' not in html  # nothing to edit
    assert f"{row.digest[:8]}..." in pages[0].content.decode()


def test_a_token_made_in_the_admin_is_shown_once_and_works() -> None:
    reader = user_with("reader", *VIEW_ALL)
    admin = _admin(_superuser())

    with time_machine.travel(T0, tick=False):
        response = admin.post("/admin/knox/authtoken/add/", {"user": reader.pk, "expiry_days": "3"})
        shown = re.search(r'<code id="token-key">(\w+)</code>', response.content.decode())
        assert shown is not None, response.content[:300]
        key = shown.group(1)
        assert _client(key).get("/api/instruments/").status_code == 200

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    row = AuthToken.objects.get()
    assert (row.user, row.expiry) == (reader, T0 + timedelta(days=3))
    assert key not in admin.get("/admin/knox/authtoken/").content.decode()


# The DRF tokens of a deployment -----------------------------------------------------------------------------


def _drf_token_table(key: str, user_id: int) -> None:
    """The table ``rest_framework.authtoken`` left behind, with one key in plain text."""
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created timestamp with time zone '
            "NOT NULL, user_id integer NOT NULL)"
            if connection.vendor == "postgresql"
            else 'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created datetime NOT NULL, '
            "user_id integer NOT NULL)"
        )
        cursor.execute(
            'INSERT INTO authtoken_token ("key", created, user_id) VALUES (%s, %s, %s)',
            [key, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), user_id],
        )


def test_the_migration_keeps_the_deployed_drf_tokens_working_and_drops_their_plain_text() -> None:
    from importlib import import_module

    migration = import_module("barter_site.migrations.0001_knox_tokens_from_drf")
    action = user_with("github-action", *RUN_STEPS)
    old_key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # DRF's format: 40 hex characters
    _drf_token_table(old_key, action.pk)
    assert _client(old_key).post("/api/sync_close_positions", {}, format="json").status_code == 401  # before

    editor = connection.schema_editor(atomic=False)
    moved = migration.knox_tokens_from_drf(apps, editor)

    assert moved == 1
    assert "authtoken_token" not in connection.introspection.table_names()
    row = AuthToken.objects.get()
    assert (row.user, row.expiry, row.created) == (action, None, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert row.digest == hashlib.sha512(old_key.encode()).hexdigest()
    response = _client(old_key).post("/api/sync_close_positions", {}, format="json")
    assert response.status_code == 200, response.content
    # Without the table (a new deployment) the migration does nothing.
    assert migration.knox_tokens_from_drf(apps, editor) == 0


# manage.py create_cycle_token -------------------------------------------------------------------------------


def _create_cycle_token(*args: str) -> tuple[str, str]:
    out = io.StringIO()
    call_command("create_cycle_token", *args, stdout=out)
    text = out.getvalue()
    shown = re.search(r"API token \(Authorization: Token <key>\): (\w+)", text)
    assert shown is not None, text
    return shown.group(1), text


def test_create_cycle_token_makes_a_user_holding_only_run_steps() -> None:
    with time_machine.travel(T0, tick=False):
        key, text = _create_cycle_token()
        cycle = _client(key)
        answers = [
            cycle.post("/api/sync_close_positions", {}, format="json").status_code,
            cycle.get("/api/instruments/").status_code,
            cycle.get("/api/strategies/").status_code,
            cycle.patch("/api/strategies/1/", {}, format="json").status_code,
        ]

    assert answers == [200, 403, 403, 403]  # the steps, and nothing else
    user = get_user_model().objects.get(username="cycle")
    assert {f"{p.content_type.app_label}.{p.codename}" for p in user.user_permissions.all()} == {
        "trading.run_steps"
    }
    assert user.get_all_permissions() == {"trading.run_steps"}
    assert not (user.is_staff or user.is_superuser or user.has_usable_password())
    assert AuthToken.objects.get().expiry == T0 + timedelta(days=365)  # BARTER_CYCLE_TOKEN_EXPIRY_DAYS
    assert "shown only this once" in text and "BARTER_API_TOKEN" in text


def test_create_cycle_token_is_idempotent_and_takes_the_expiry() -> None:
    first, _ = _create_cycle_token("--username", "gh-action")
    second, text = _create_cycle_token("--username", "gh-action", "--expiry-days", "0")

    assert get_user_model().objects.filter(username="gh-action").count() == 1
    assert first != second
    assert "Reusing user 'gh-action'" in text and "1 other token(s)" in text
    assert AuthToken.objects.get(digest=hashlib.sha512(second.encode()).hexdigest()).expiry is None
    assert get_user_model().objects.get(username="gh-action").get_all_permissions() == {"trading.run_steps"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expiry-days", "-1"], "--expiry-days must be >= 0"),
        (["--username", "has space"], "is not a valid user name"),
        (["--username", "boss"], "user 'boss' is a superuser"),
        (["--username", "reader"], "user 'reader' holds instruments.view_instrument"),
    ],
)
def test_create_cycle_token_refuses_bad_input_with_how_to_fix_it(args: list[str], message: str) -> None:
    _superuser()
    user_with("reader", "instruments.view_instrument")

    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("create_cycle_token", *args, stdout=io.StringIO())

    assert not AuthToken.objects.exists()
    assert permissions("trading.run_steps")[0].user_set.count() == 0


def test_staff_with_the_token_permissions_makes_and_sees_only_their_own_tokens() -> None:
    staff = user_with(
        "staff", "knox.add_authtoken", "knox.view_authtoken", "knox.delete_authtoken", is_staff=True
    )
    boss = _superuser()
    api_token(boss)
    client = _admin(staff)

    for_boss = client.post("/admin/knox/authtoken/add/", {"user": boss.pk, "expiry_days": "3"})
    for_self = client.post("/admin/knox/authtoken/add/", {"user": staff.pk, "expiry_days": "3"})
    listed = client.get("/admin/knox/authtoken/")

    assert "user" in for_boss.context["adminform"].form.errors  # another user's token: not a choice
    assert for_self.status_code == 200 and b'id="token-key"' in for_self.content
    assert AuthToken.objects.filter(user=boss).count() == 1
    assert listed.context["cl"].result_count == 1  # their own only
