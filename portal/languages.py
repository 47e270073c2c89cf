"""Which language a person gets: on the pages they open, and in the emails the portal sends them.

- Before signing in, the browser decides: the language cookie of the switcher, else
  ``Accept-Language`` (Django's ``LocaleMiddleware``).
- A signed-in person who chose a language on the switcher (or on their profile) has it stored
  on their ``UserProfile``; ``UserLanguageMiddleware`` applies it on each of their requests, in
  every browser. The choice is copied into the session when they sign in, so applying it costs
  no query.
- An email goes out in its recipient's language (``language_of``, ``by_language``): their
  profile's choice, else the tenant's invoice language for the tenant's emails, else
  ``settings.LANGUAGE_CODE``. Invoices and their PDFs use the tenant's invoice language.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from portal.models import Tenant, UserProfile

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SESSION_LANGUAGE_KEY = "portal_language"
"""The signed-in person's chosen language, copied from their profile ("" for none)."""


def supported(code: str | None) -> str | None:
    """``code`` as one of ``settings.LANGUAGES`` (``de-CH`` → ``de``), or None."""
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(str(code).strip())
    except LookupError:
        return None


def user_language(user: Any) -> str:
    """The language ``user`` chose ("" when they chose none or are anonymous)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    chosen = UserProfile.objects.filter(user=user).values_list("language", flat=True).first()
    return supported(chosen) or ""


def set_user_language(user: User, code: str, request: HttpRequest | None = None) -> None:
    """Store ``user``'s choice (``""`` to follow the browser again); ``request``'s session, if
    given, follows at once."""
    language = supported(code) or ""
    UserProfile.objects.update_or_create(user=user, defaults={"language": language})
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_LANGUAGE_KEY] = language


def _remember_on_sign_in(sender: Any, request: HttpRequest | None, user: User,
                         **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_LANGUAGE_KEY] = user_language(user)


def connect() -> None:
    user_logged_in.connect(_remember_on_sign_in, dispatch_uid="portal.languages.sign_in")


class UserLanguageMiddleware:
    """After ``AuthenticationMiddleware``: a signed-in person's chosen language wins over the
    browser's. Sessions from before the choice was kept read the profile once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = self._chosen(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)

    @staticmethod
    def _chosen(request: HttpRequest) -> str | None:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None  # no session, nobody signed in: the browser decides
        session = request.session
        if session.get(AUTH_SESSION_KEY) is None:
            return None
        if SESSION_LANGUAGE_KEY not in session:
            session[SESSION_LANGUAGE_KEY] = user_language(request.user)
        return supported(session[SESSION_LANGUAGE_KEY])


# --------------------------------------------------------------------------- emails


def fallback_language(tenant: Tenant | None = None) -> str:
    """The language of an email to someone who chose none: the tenant's invoice language for
    the tenant's emails, else the portal's default."""
    if tenant is not None:
        return supported(tenant.invoice_language) or settings.LANGUAGE_CODE
    return settings.LANGUAGE_CODE


def invoice_language(tenant: Tenant) -> str:
    """The language of ``tenant``'s invoices, their PDFs and CSV headings."""
    return fallback_language(tenant)


def _chosen_by_address(addresses: Iterable[str]) -> dict[str, str]:
    wanted = sorted({a.lower() for a in addresses if a})
    if not wanted:
        return {}
    chosen: dict[str, str] = {}
    rows = (get_user_model().objects.annotate(address=Lower("email"))
            .filter(address__in=wanted, profile__language__gt="")
            .order_by("pk").values_list("address", "profile__language"))
    for address, language in rows:
        code = supported(language)
        if code:
            chosen.setdefault(address, code)
    return chosen


def chosen_language(address: str) -> str | None:
    """The language the account with ``address`` chose, or None."""
    return _chosen_by_address([address]).get(address.lower())


def language_of(address: str, tenant: Tenant | None = None) -> str:
    """The language of an email to ``address``: the choice of the account with that address,
    else ``fallback_language(tenant)``."""
    return chosen_language(address) or fallback_language(tenant)


def by_language(addresses: Iterable[str], tenant: Tenant | None = None) -> dict[str, list[str]]:
    """``addresses`` grouped by the language each should be written to (see ``language_of``),
    each group in the given order; one query."""
    addresses = list(addresses)
    chosen = _chosen_by_address(addresses)
    fallback = fallback_language(tenant)
    groups: dict[str, list[str]] = defaultdict(list)
    for address in addresses:
        groups[chosen.get(address.lower(), fallback)].append(address)
    return dict(groups)


def in_each_language(addresses: Iterable[str], tenant: Tenant | None,
                     send: Callable[[list[str]], None]) -> None:
    """``send(group)`` once per language of ``addresses`` (``by_language``), with that language
    active: subject and body are rendered in it, and amounts and dates are formatted as it
    writes them."""
    for language, group in by_language(addresses, tenant).items():
        with translation.override(language):
            send(group)
