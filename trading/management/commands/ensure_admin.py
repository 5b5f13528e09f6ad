"""``manage.py ensure_admin``: create a superuser ``admin`` with a generated password when there is none."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from barter_site.tokens import api_token_create


class Command(BaseCommand):
    help = "Create a superuser (and its API token) if none exists, printing the generated password once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin user exists already; its password is not shown again.")
            return
        password = secrets.token_urlsafe(12)
        user = users.objects.create_superuser(options["username"], email="", password=password)
        token, key = api_token_create(user=user)
        self.stdout.write(
            self.style.SUCCESS(f"Created admin user {user.get_username()!r} with password: {password}")
        )
        self.stdout.write(f"API token for it (Authorization: Token <key>): {key}")
        expiry = f"expires {token.expiry:%Y-%m-%d %H:%M} UTC" if token.expiry else "never expires"
        self.stdout.write(f"The token {expiry} (BARTER_API_TOKEN_EXPIRY_DAYS); revoke it in the admin.")
        self.stdout.write("Both are shown only this once.")
