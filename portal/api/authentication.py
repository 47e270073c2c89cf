"""Personal access tokens in ``Authorization: Bearer kp_…``; the browser uses its session.

Only the SHA-256 of a token is stored, so a lookup is one indexed query on the hash. A token
never travels in a URL: the header is the only place it is read from.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions

from portal.audit import client_ip
from portal.models import API_TOKEN_PREFIX, ApiToken

# Writing "last used" on every request would turn each read into a write; once a minute is
# precise enough to tell a person whether a token is still in use.
LAST_USED_PRECISION = timedelta(minutes=1)
MAX_TOKEN_LENGTH = 200


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                _("Malformed Authorization header: use “Bearer <token>”."))
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not raw.startswith(API_TOKEN_PREFIX) or len(raw) > MAX_TOKEN_LENGTH:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = (ApiToken.objects.select_related("user", "tenant")
                 .filter(token_hash=ApiToken.hash_token(raw)).first())
        if token is None or token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                _("This token expired on %(date)s; create a new one on your profile page.")
                % {"date": token.expires_at.date().isoformat()})
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("This account is disabled."))
        self._record_use(token, client_ip(request))
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return f'{self.keyword} realm="api"'

    @staticmethod
    def _record_use(token: ApiToken, ip: str | None) -> None:
        now = timezone.now()
        if (token.last_used_at is not None and token.last_used_ip == ip
                and now - token.last_used_at < LAST_USED_PRECISION):
            return
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
        token.last_used_at, token.last_used_ip = now, ip


def request_token(request: Any) -> ApiToken | None:
    """The token the request was authenticated with (None for a browser session)."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else None
