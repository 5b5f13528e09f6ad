"""The admin's read-only base (:class:`ReadOnlyAdmin`), and the admin of API tokens (django-rest-knox),
replacing knox's own: no key, nor any part of one, is ever shown, except once, on the page that answers the
"add" that made it.

knox stores a token's SHA-512 digest and its first 15 characters (``token_key``, the lookup index). knox's admin
lists the digest and lets the ``token_key`` be searched and edited; this one shows the start of the digest only
(enough to tell tokens apart), searches by user, and makes existing tokens read-only: a token is revoked by
deleting it, and its expiry is set when it is made. Only a superuser sees and makes tokens of other users.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import escape
from knox.models import AuthToken, get_digest_token
from knox.settings import CONSTANTS

admin.site.unregister(AuthToken)
# No navigation sidebar: on a 1,400 px screen it took 300 px from the change lists, whose columns then scrolled
# sideways; the home page and the breadcrumbs lead to every model.
admin.site.enable_nav_sidebar = False


if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]  # Any: a base for the admin of any model (and knox's untyped model)
    _ModelForm = forms.ModelForm[Any]  # Any: knox's AuthToken has no type information
else:
    _ModelAdmin = admin.ModelAdmin  # generic only in django-stubs: not subscriptable at run time
    _ModelForm = forms.ModelForm


#: Decimal places a list column shows at most: a satoshi (1e-8 BTC) is the finest step of the quantities and
#: prices Barter stores (stored with 18 places).
LIST_DECIMAL_PLACES = 8


def decimal_text(value: Decimal | None, *, places: int = LIST_DECIMAL_PLACES) -> str:
    """Write a stored decimal for reading: rounded to ``places`` (half to even), without trailing zeros, with
    thousands separated.

    ``Decimal("64940.580000000000000000")`` gives ``"64,940.58"``, ``Decimal("0.153846153846153846")``
    ``"0.15384615"``, ``Decimal("100.000")`` ``"100"``; None gives ``"-"``.
    """
    if value is None:
        return "-"
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN).normalize()
    if rounded.is_zero():
        return "0"
    return format(rounded, ",f")


def moment_text(value: datetime | None) -> str:
    """Write an aware datetime for a list column, compactly and in UTC: ``"2024-03-01 16:00"``; None gives "-"."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _column(name: str, field: Any, text: Callable[[Any], str]) -> Callable[[Any], str]:
    """A list column showing field ``name`` through ``text``, sortable by it, titled as it."""

    def column(obj: Any) -> str:
        return text(getattr(obj, name))

    column.__name__ = name  # the column's CSS class stays column-<name>
    return admin.display(description=str(field.verbose_name), ordering=name)(column)


class BarterAdmin(_ModelAdmin):
    """The base of every Barter admin: readable decimals in change lists, and help texts shown as plain text.

    - Decimal fields (stored with 18 places) named in ``list_display`` are shown by :func:`decimal_text`
      (``64,940.58``, not ``64940.580000000000000000``), and datetime fields by :func:`moment_text`
      (``2024-03-01 16:00``, not ``March 1, 2024, 4 p.m.``), still sortable: the columns stay narrow.
    - A field's ``help_text`` is escaped: Django's admin writes help texts as HTML, so
      ``BARTER_EXCHANGE_<ID>_KEY`` showed as ``BARTER_EXCHANGE__KEY`` (``<ID>`` taken for a tag).
    """

    def get_list_display(self, request: HttpRequest) -> Any:
        columns: list[Any] = []
        for name in super().get_list_display(request):
            field = None
            if isinstance(name, str):
                try:
                    field = self.model._meta.get_field(name)
                except FieldDoesNotExist:
                    field = None
            if isinstance(name, str) and isinstance(field, models.DecimalField):
                columns.append(_column(name, field, decimal_text))
            elif isinstance(name, str) and isinstance(field, models.DateTimeField):
                columns.append(_column(name, field, moment_text))
            else:
                columns.append(name)
        return columns

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None and formfield.help_text:
            formfield.help_text = escape(formfield.help_text)
        return formfield


class ReadOnlyAdmin(BarterAdmin):
    """An admin that shows rows and never adds, changes or deletes them (they are written by services)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuthTokenAddForm(_ModelForm):
    """A new token: its user and lifetime; the key is generated on save and shown once."""

    expiry_days = forms.IntegerField(
        min_value=0,
        max_value=36500,
        label="Expires after (days)",
        help_text="0: never expires. Default: BARTER_API_TOKEN_EXPIRY_DAYS.",
    )

    class Meta:
        model = AuthToken
        fields = ["user"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["expiry_days"].initial = settings.BARTER_API_TOKEN_EXPIRY_DAYS


@admin.register(AuthToken)
class AuthTokenAdmin(_ModelAdmin):
    """API tokens by user, creation and expiry; add shows the new key once; delete revokes."""

    list_display = ["digest_start", "user", "created", "expiry", "expired"]
    list_filter = ["created", "expiry"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]
    readonly_fields = ["digest_start", "user", "created", "expiry"]

    @admin.display(description="token (digest)")
    def digest_start(self, obj: AuthToken) -> str:
        """The first 8 hex digits of the SHA-512 digest: tells tokens apart, reveals nothing of the key."""
        return f"{obj.digest[:8]}..." if obj.digest else "-"

    @admin.display(description="expired", boolean=True)
    def expired(self, obj: AuthToken) -> bool:
        return obj.expiry is not None and obj.expiry <= timezone.now()

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuthToken]:
        """Every token for a superuser; a staff user with the token permissions sees (and revokes) their own."""
        tokens = super().get_queryset(request).defer("token_key")
        return tokens if request.user.is_superuser else tokens.filter(user_id=request.user.pk or 0)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """A token for another user is the power of that user: only a superuser may make one; staff holding
        ``knox.add_authtoken`` make their own."""
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk or 0)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = AuthTokenAddForm
            kwargs["fields"] = ["user", "expiry_days"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["user", "expiry_days"] if obj is None else list(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Tokens never change (view them with ``view_authtoken``; revoke by deleting)."""
        return False

    def save_model(self, request: HttpRequest, obj: AuthToken, form: Any, change: bool) -> None:
        """Generate the key of a new token, store only its digest, and keep the key for :meth:`response_add`."""
        digest, key = get_digest_token()
        obj.digest = digest
        obj.token_key = key[: CONSTANTS.TOKEN_KEY_LENGTH]
        days = form.cleaned_data["expiry_days"]
        obj.expiry = timezone.now() + timedelta(days=days) if days else None
        obj.save()
        request._barter_new_token_key = key  # type: ignore[attr-defined]  # read by response_add

    def response_add(
        self, request: HttpRequest, obj: AuthToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Show the new key on this one page (never in a message, a cookie or the list)."""
        key = getattr(request, "_barter_new_token_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.opts,
            "token_user": obj.user,
            "key": key,
            "expiry": obj.expiry,
        }
        response = TemplateResponse(request, "admin/barter_site/token_created.html", context)
        response["Cache-Control"] = "no-store"
        return response
