"""``manage.py create_cycle_token``: the API token of the daily cycle (the GitHub Action's ``BARTER_API_TOKEN``).

Makes (or reuses) a user that holds only the permission ``trading.run_steps``, so its token can call the three
step endpoints and nothing else (no reads, no strategy changes, no admin, no password to log in with), and
prints a new token of it once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from barter_site.permissions import RUN_STEPS
from barter_site.tokens import api_token_create


class Command(BaseCommand):
    help = (
        "Make (or reuse) a user holding only the permission trading.run_steps and print a new API token of it once: "
        "the token the daily GitHub Action sends (BARTER_API_TOKEN)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="cycle", help="The cycle user's name (default: cycle).")
        parser.add_argument(
            "--expiry-days",
            type=int,
            default=None,
            help="Days until the token expires; 0: never. Default: BARTER_CYCLE_TOKEN_EXPIRY_DAYS (365).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        expiry_days: int = (
            settings.BARTER_CYCLE_TOKEN_EXPIRY_DAYS
            if options["expiry_days"] is None
            else options["expiry_days"]
        )
        if expiry_days < 0:
            raise CommandError(f"--expiry-days must be >= 0 (0: the token never expires); was {expiry_days}")
        users = get_user_model()
        try:
            users.username_validator(username)
        except ValidationError as exc:
            raise CommandError(
                f"--username {username!r} is not a valid user name: {' '.join(exc.messages)}"
            ) from exc
        app_label, codename = RUN_STEPS.split(".")
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is None:
            raise CommandError(
                f"the permission {RUN_STEPS!r} does not exist yet: run 'manage.py migrate' first"
            )
        with transaction.atomic():
            user, created = users.objects.select_for_update().get_or_create(username=username)
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            else:
                self._check_reusable(user, permission)
            user.user_permissions.add(permission)
            token, key = api_token_create(user=user, expiry_days=expiry_days)
        self.stdout.write(
            self.style.SUCCESS(
                f"{'Created' if created else 'Reusing'} user {username!r}, holding only the permission {RUN_STEPS!r}."
            )
        )
        self.stdout.write(f"API token (Authorization: Token <key>): {key}")
        expiry = f"It expires {token.expiry:%Y-%m-%d %H:%M} UTC" if token.expiry else "It never expires"
        others = user.auth_token_set.exclude(digest=token.digest).count()  # type: ignore[attr-defined]
        self.stdout.write(
            f"{expiry}. It is shown only this once: set it as the GitHub Action's secret BARTER_API_TOKEN."
            + (
                f" The user has {others} other token(s): delete them in the admin to revoke them."
                if others
                else ""
            )
        )

    @staticmethod
    def _check_reusable(user: Any, permission: Permission) -> None:
        """Refuse a user that may do more than run the steps: its token would carry all of that."""
        if user.is_superuser or user.is_staff:
            raise CommandError(
                f"user {user.get_username()!r} is {'a superuser' if user.is_superuser else 'staff'}: the cycle "
                "token's user must hold only trading.run_steps; choose another --username"
            )
        extra = sorted(
            f"{p.content_type.app_label}.{p.codename}"
            for p in user.user_permissions.select_related("content_type").exclude(pk=permission.pk)
        )
        if extra or user.groups.exists():
            held = ", ".join(extra) or "permissions through its groups"
            raise CommandError(
                f"user {user.get_username()!r} holds {held}: the cycle token's user must hold only "
                "trading.run_steps; choose another --username, or take those away in the admin"
            )
        if not user.is_active:
            raise CommandError(
                f"user {user.get_username()!r} is inactive: its tokens would be refused; activate it in the admin "
                "or choose another --username"
            )
