"""Who acts (``Actor``) and the audit trail every change leaves (``record``).

Actions take an ``Actor`` explicitly and call ``record`` inside their own transaction, so an
audit entry exists exactly when the change it describes was committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied

from portal.models import AuditEntry, Tenant
from portal.proxies import request_client_address

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest


@dataclass(frozen=True)
class Actor:
    user: User | None
    via: str = AuditEntry.Via.WEB
    ip: str | None = None
    token_name: str = ""
    read_only: bool = False
    reason: str = ""  # the system's: what made it act ("expiry", "window", "schedule")

    @property
    def label(self) -> str:
        if self.user is None:
            return f"system ({self.reason})" if self.reason else "system"
        return getattr(self.user, "email", "") or str(self.user)

    @property
    def person(self) -> User:
        """The person acting, for what only a person does (own a tenant, join one, a profile)."""
        if self.user is None:
            raise PermissionDenied("the system cannot act as a person")
        return self.user

    @classmethod
    def system(cls, reason: str = "") -> Actor:
        """The portal acting by itself; ``reason`` names what made it act, and shows in the
        audit log and on the timeline as "system (expiry)"."""
        return cls(user=None, via=AuditEntry.Via.SYSTEM, reason=reason)


def client_ip(request: HttpRequest) -> str | None:
    # X-Forwarded-For counts only as far as TRUSTED_PROXIES wrote it (portal.proxies).
    return request_client_address(request) or None


def actor_from_request(request: HttpRequest, via: str = AuditEntry.Via.WEB) -> Actor:
    user = request.user if request.user.is_authenticated else None
    return Actor(
        user=user,
        via=via,
        ip=client_ip(request),
        token_name=getattr(request, "api_token_name", ""),
        read_only=bool(getattr(request, "impersonating", False)),
    )


def _describe(obj: Any) -> tuple[str, str, str]:
    if obj is None:
        return "", "", ""
    meta = getattr(obj, "_meta", None)
    object_type = meta.model_name if meta else type(obj).__name__.lower()
    return object_type, str(getattr(obj, "pk", "") or ""), str(obj)[:200]


def record(
    actor: Actor,
    verb: str,
    obj: Any = None,
    *,
    tenant: Tenant | None = None,
    changes: dict[str, Any] | None = None,
    object_type: str | None = None,
) -> AuditEntry:
    """Append one audit entry. ``changes`` is a short before/after summary: {field: [old, new]}."""
    kind, object_id, object_repr = _describe(obj)
    return AuditEntry.objects.create(
        actor=actor.user,
        actor_label=actor.label,
        via=actor.via,
        token_name=actor.token_name,
        ip=actor.ip,
        tenant=tenant,
        tenant_slug=tenant.slug if tenant else "",
        verb=verb,
        object_type=object_type or kind,
        object_id=object_id,
        object_repr=object_repr,
        changes=changes or {},
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}
