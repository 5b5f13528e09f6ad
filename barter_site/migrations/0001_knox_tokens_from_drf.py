"""Move the API tokens of ``rest_framework.authtoken`` (plain-text keys) to django-rest-knox (SHA-512 digests).

knox finds a token by its first 15 characters (``token_key``) and then compares the SHA-512 digest of the whole
key, whatever its length, so a 40-character DRF key stored as knox's digest authenticates exactly as before: the
deployed GitHub Action's ``BARTER_API_TOKEN`` keeps working without a change. Migrated tokens never expire (as
before); revoke one by deleting it in the admin. The old table, which held the keys in plain text, is dropped.
A database that never had DRF tokens (a new deployment, the tests) has no such table, and nothing is done.

Reversing restores nothing: only digests are kept, so the old keys cannot be written back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import migrations
from django.utils.dateparse import parse_datetime
from knox.crypto import hash_token
from knox.settings import CONSTANTS

#: The table of ``rest_framework.authtoken.models.Token``: key (40 hex characters), created, user_id.
DRF_TOKEN_TABLE = "authtoken_token"


def _aware(value: datetime | str) -> datetime | None:
    """A timestamp as read by the raw cursor (SQLite may give text, and naive UTC), as an aware UTC datetime."""
    parsed = parse_datetime(value) if isinstance(value, str) else value
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def knox_tokens_from_drf(apps: Any, schema_editor: Any) -> int:
    """Store a knox token (digest, no expiry) for every DRF token, keep its creation time, drop the DRF table.

    Returns:
        How many tokens were moved (0 when the table does not exist).
    """
    connection = schema_editor.connection
    if DRF_TOKEN_TABLE not in connection.introspection.table_names():
        return 0
    auth_token = apps.get_model("knox", "AuthToken")
    table = schema_editor.quote_name(DRF_TOKEN_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {schema_editor.quote_name('key')}, created, user_id FROM {table}")  # noqa: S608
        rows = cursor.fetchall()
    for key, created, user_id in rows:
        digest = hash_token(key)
        auth_token.objects.update_or_create(
            digest=digest,
            defaults={"token_key": key[: CONSTANTS.TOKEN_KEY_LENGTH], "user_id": user_id, "expiry": None},
        )
        auth_token.objects.filter(digest=digest).update(created=_aware(created))
    schema_editor.execute(f"DROP TABLE {table}")
    return len(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("knox", "0009_extend_authtoken_field"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(knox_tokens_from_drf, migrations.RunPython.noop, elidable=False)]
