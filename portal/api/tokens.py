"""Creating and revoking personal access tokens (the profile page calls these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import Actor, record
from portal.models import ApiToken, Membership, Tenant
from portal.validators import clean_text_fields

EXPIRY_CHOICES_DAYS = (7, 30, 90, 365)
MAX_ACTIVE_TOKENS = 50


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown once, never stored


def tokens_for(user: Any) -> list[ApiToken]:
    return list(ApiToken.objects.filter(user=user).select_related("tenant"))


def do_create_token(actor: Actor, *, name: str, scope: str, expires_in_days: int,
                    tenant: Tenant | None = None) -> NewToken:
    """Create a token for ``actor.user``; the secret is returned once and only its hash kept."""
    user = actor.person
    if actor.read_only:
        raise ValidationError(_("Tokens cannot be created while viewing as staff."))
    if expires_in_days not in EXPIRY_CHOICES_DAYS:
        raise ValidationError({"expires_in_days": _("Choose one of the offered durations.")})
    if scope not in ApiToken.Scope.values:
        raise ValidationError({"scope": _("Choose read or read and write.")})
    if tenant is not None and not Membership.objects.filter(user=user, tenant=tenant).exists():
        raise ValidationError({"tenant": _("You are not a member of this tenant.")})
    with transaction.atomic():
        if ApiToken.objects.filter(user=user).active().count() >= MAX_ACTIVE_TOKENS:
            raise ValidationError(_("You have %(n)d active tokens, the most allowed; revoke "
                                    "some first.") % {"n": MAX_ACTIVE_TOKENS})
        secret, token_hash = ApiToken.new_secret()
        token = ApiToken(
            user=user, name=name.strip(), scope=scope, tenant=tenant, token_hash=token_hash,
            prefix=secret[:10], expires_at=timezone.now() + timedelta(days=expires_in_days))
        clean_text_fields(token, ["name"])
        token.save(force_insert=True)
        record(actor, "api_token.create", token, tenant=tenant,
               changes={"scope": [None, scope], "expires_at": [None, token.expires_at.isoformat()]})
    return NewToken(token=token, secret=secret)


def do_revoke_token(actor: Actor, token_id: int) -> ApiToken:
    """Revoke one of the actor's own tokens; revoking twice changes nothing."""
    with transaction.atomic():
        token = (ApiToken.objects.select_for_update()
                 .filter(pk=token_id, user=actor.user).first())
        if token is None:
            raise Http404
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            record(actor, "api_token.revoke", token, tenant=token.tenant)
    return token
