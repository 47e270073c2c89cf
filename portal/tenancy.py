"""Resolving the tenant in a URL and the caller's role in it.

A non-member gets 404 (a tenant that exists and one that does not look the same); a member
without the permission gets 403. Staff impersonation gives a read-only view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseNotAllowed
from django.utils.translation import gettext as _

from portal.models import Membership, Tenant
from portal.permissions import CREDENTIAL_PERMS, WRITE_PERMS, Role, perms_for, role_has

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http.response import HttpResponseBase

IMPERSONATION_SESSION_KEY = "impersonate_tenant_id"


class AuthenticatedHttpRequest(HttpRequest):
    """The request a view behind ``login_required`` receives: its user is signed in."""

    user: User


@dataclass
class TenantContext:
    tenant: Tenant
    role: str
    membership: Membership | None
    read_only: bool = False

    def can(self, perm: str) -> bool:
        if perm in WRITE_PERMS and (self.read_only or self.tenant.is_suspended):
            return False
        if perm in CREDENTIAL_PERMS and self.read_only:
            return False  # a read-only view (staff impersonation) never hands out credentials
        return role_has(self.role, perm)

    @property
    def perms(self) -> frozenset[str]:
        return frozenset(p for p in perms_for(self.role) if self.can(p))

    def require(self, perm: str) -> None:
        if not self.can(perm):
            if perm in WRITE_PERMS and self.tenant.is_suspended:
                raise PermissionDenied(
                    _("This tenant is suspended: %(reason)s")
                    % {"reason": self.tenant.suspension_reason or _("contact support")}
                )
            raise PermissionDenied(_("Your role does not allow this."))


def access_tenant(user: Any, slug: str, perm: str | None = None, *,
                  impersonate_tenant_id: int | None = None,
                  memberships: list[Membership] | None = None) -> TenantContext:
    """The tenant ``slug`` as seen by ``user``; 404 for outsiders, 403 without ``perm``.

    ``memberships`` are all of ``user``'s when the caller has them (``user_memberships``),
    so the lookup needs no query of its own.
    """
    if not getattr(user, "is_authenticated", False):
        raise Http404
    if memberships is None:
        membership = (Membership.objects.select_related("tenant")
                      .filter(user=user, tenant__slug=slug).first())
    else:
        membership = next((m for m in memberships if m.tenant.slug == slug), None)
    if membership is not None:
        ctx = TenantContext(membership.tenant, membership.role, membership)
    elif user.is_staff and impersonate_tenant_id is not None:
        tenant = Tenant.objects.filter(slug=slug, pk=impersonate_tenant_id).first()
        if tenant is None:
            raise Http404
        ctx = TenantContext(tenant, Role.OWNER, None, read_only=True)
    else:
        raise Http404
    if perm is not None:
        ctx.require(perm)
    return ctx


def tenant_context_for_request(request: HttpRequest, slug: str,
                               perm: str | None = None) -> TenantContext:
    # One query for the page's membership and its tenant switcher (``user_tenants``).
    memberships = user_memberships(request.user)
    request.user_tenants = [(m.tenant, m.role) for m in memberships]  # type: ignore[attr-defined]  # for the page's tenant switcher
    ctx = access_tenant(request.user, slug, perm,
                        impersonate_tenant_id=request.session.get(IMPERSONATION_SESSION_KEY),
                        memberships=memberships)
    request.impersonating = ctx.read_only  # type: ignore[attr-defined]  # read by actor_from_request
    request.tenant_ctx = ctx  # type: ignore[attr-defined]  # for templates and context processors
    return ctx


def tenant_view(
    perm: str, methods: tuple[str, ...] = ("GET", "HEAD")
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Decorate ``view(request, ctx, **kwargs)`` for URLs with a ``tenant_slug`` parameter.

    Only ``methods`` are accepted (GET and HEAD unless the view says otherwise), so a page that
    only reads can never be made to write by another verb.
    """

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, tenant_slug: str, **kwargs: Any) -> HttpResponseBase:
            ctx = tenant_context_for_request(request, tenant_slug, perm)
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            return view(request, ctx, **kwargs)

        wrapper.tenant_perm = perm  # type: ignore[attr-defined]  # read by the test that walks every URL
        return wrapper

    return decorator


def user_memberships(user: Any) -> list[Membership]:
    """Every membership of ``user`` with its tenant, by tenant name."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(Membership.objects.filter(user=user).select_related("tenant")
                .order_by("tenant__name"))


def user_tenants(user: Any) -> list[tuple[Tenant, str]]:
    return [(m.tenant, m.role) for m in user_memberships(user)]
