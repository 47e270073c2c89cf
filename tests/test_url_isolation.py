"""Walks every URL pattern of the project and proves tenant isolation and role limits.

Patterns are found from the URL resolver, so a new URL is covered without editing this file;
it only needs a sample value for each new URL parameter (PARAM_SAMPLES), or an entry in
PUBLIC / NOT_TENANT_SCOPED with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from portal.models import Invitation
from portal.permissions import WRITE_PERMS, Role
from tests.factories import MembershipFactory

# URL names that anyone may reach without signing in, with the reason.
PUBLIC: dict[str, str] = {
    "healthz": "liveness probe for the load balancer",
    "readyz": "readiness probe for the load balancer",
    "set_language": "choosing a language works before signing in",
    "api:schema": "the OpenAPI document: no tenant data, needed to generate a client",
    "api:docs": "Swagger UI for the OpenAPI document",
    "api:redoc": "Redoc for the OpenAPI document",
    "brand_logo": "the product's logo: the sign-in page shows it",
    "brand_favicon": "the product's icon: the sign-in page shows it",
    "favicon_ico": "browsers ask for it on their own, before anyone signs in",
    "brand_stylesheet": "the product's colours: the sign-in page uses them",
}
# Namespaces / prefixes handled by their own tests.
OWN_TESTS: dict[str, str] = {
    "admin": "staff admin: tests/portal/test_admin_mfa.py (staff + MFA only)",
    "allauth": "sign-in, sign-up and account pages belong to django-allauth",
}
# Signed-in pages that are not inside a tenant (no tenant_slug); anonymous → login.
NOT_TENANT_SCOPED: dict[str, str] = {
    "home": "lists only the caller's own tenants",
    "tenant_create": "creates a new tenant owned by the caller",
    "invitation_accept": "the code itself decides which tenant",
    "profile": "the caller's own profile",
    "notification_preferences": "the caller's own email choices",
    "api_tokens": "the caller's own API tokens",
    "api_token_revoke": "revokes one of the caller's own tokens (404 for anyone else's)",
    "staff_console": "staff with MFA only: tests/portal/test_staff.py",
    "staff_impersonate": "staff with MFA only: tests/portal/test_staff.py",
    "staff_impersonate_stop": "ends the caller's own impersonation session",
    "staff_automation": "staff with MFA only: tests/portal/test_staff_automation.py",
    "staff_automation_pause": "staff with MFA only: tests/portal/test_staff_automation.py",
    "mfa_enrolment": "spends a link sent to the caller's own account (test_mfa_enrolment.py)",
    "mfa_enrolment_request": "emails the caller's own verified address (test_mfa_enrolment.py)",
}
# Tenant URLs a viewer may read that answer a state of the sample cluster, with the reason.
VIEWER_GET_STATES: dict[str, tuple[int, str]] = {
    "api:cluster_sso_kubeconfig": (409, "the sample cluster gives nobody single sign-on access"),
}
# Tenant URLs a viewer may POST to, with the reason.
VIEWER_MAY_POST: dict[str, str] = {
    "tenant_leave": "anyone may leave a tenant (the last owner is refused by the action)",
}


@dataclass
class World:
    tenant: Any
    owner: Any
    viewer: Any
    outsider: Any
    invitation: Invitation
    extra: dict[str, Any]


def _sample_cluster(w: World) -> Any:
    if "cluster" not in w.extra:
        from tests.api.factories import make_cluster, make_operation

        w.extra["cluster"] = make_cluster(w.tenant)
        w.extra["operation"] = make_operation(w.extra["cluster"])
    return w.extra["cluster"]


def _sample_token(w: World) -> Any:
    if "token" not in w.extra:
        from portal.models import ApiToken
        from tests.api.factories import make_token

        make_token(w.owner)
        w.extra["token"] = ApiToken.objects.filter(user=w.owner).latest("pk")
    return w.extra["token"]


def _sample_invoice(w: World) -> Any:
    if "invoice" not in w.extra:
        from billing.invoicing import ensure_draft
        from billing.periods import Period

        w.extra["invoice"] = ensure_draft(w.tenant.pk, Period.current().previous)
    return w.extra["invoice"]


def _sample_delivery(w: World) -> Any:
    """A webhook of the tenant with one delivery (of a test event)."""
    if "delivery" not in w.extra:
        from notifications.models import Delivery, Event, WebhookEndpoint
        from portal.encryption import seal

        endpoint = WebhookEndpoint.objects.create(
            tenant=w.tenant, url="https://hooks.example.com/portal",
            event_types=["cluster.ready"], secret_sealed=seal("whsec_sample"),
            secret_hint="whsec_samp")
        event = Event.objects.create(tenant=w.tenant, type="webhook.test",
                                     occurred_at=endpoint.created_at, data={"message": "x"})
        w.extra["delivery"] = Delivery.objects.create(
            endpoint=endpoint, event=event, state=Delivery.State.FAILED, retries=False)
    return w.extra["delivery"]


def _sample_template(w: World) -> Any:
    if "template" not in w.extra:
        from clusters.models import ClusterTemplate
        from cozystack.specjson import spec_to_json
        from cozystack.specs import ClusterSpec, NodeGroupSpec

        spec = ClusterSpec(name="", namespace="", version="v1.34", node_groups=(
            NodeGroupSpec(name="md0", instance_type="u1.medium", min_replicas=1,
                          max_replicas=3, disk_gib=50),))
        w.extra["template"] = ClusterTemplate.objects.create(
            tenant=w.tenant, name="small", spec=spec_to_json(spec))
    return w.extra["template"]


def _sample_deleted(w: World) -> Any:
    """A cluster of the tenant deleted yesterday (still shown)."""
    if "deleted" not in w.extra:
        from datetime import timedelta

        from django.utils import timezone

        from clusters.models import Cluster

        w.extra["deleted"] = Cluster.objects.create(
            tenant=w.tenant, name="gone", version="v1.34", phase=Cluster.Phase.DELETED,
            deleted_at=timezone.now() - timedelta(days=1))
    return w.extra["deleted"]


PARAM_SAMPLES: dict[str, Callable[[World], Any]] = {
    "tenant_slug": lambda w: w.tenant.slug,
    "membership_id": lambda w: w.tenant.memberships.get(user=w.owner).pk,
    "invitation_id": lambda w: w.invitation.pk,
    "cluster_name": lambda w: _sample_cluster(w).name,
    "group_name": lambda w: _sample_cluster(w).node_groups.first().name,
    "operation_id": lambda w: (_sample_cluster(w), w.extra["operation"])[1].pk,
    "token_id": lambda w: _sample_token(w).pk,
    "invoice_id": lambda w: _sample_invoice(w).pk,
    "webhook_id": lambda w: _sample_delivery(w).endpoint_id,
    "delivery_id": lambda w: _sample_delivery(w).pk,
    "template_id": lambda w: _sample_template(w).pk,
    "deleted_id": lambda w: _sample_deleted(w).pk,
    "cluster_id": lambda w: _sample_deleted(w).pk,  # the API's deleted cluster
}


def _iter(resolver: URLResolver, names: tuple[str, ...] = (), params: tuple[str, ...] = (),
          prefix: str = "") -> Iterator[tuple[str, tuple[str, ...], URLPattern, str]]:
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        found = tuple(re.findall(r"<(?:\w+:)?(\w+)>", str(entry.pattern)))
        found += tuple(re.findall(r"\(\?P<(\w+)>", str(entry.pattern)))
        if isinstance(entry, URLResolver):
            ns = names + ((entry.namespace,) if entry.namespace else ())
            yield from _iter(entry, ns, params + found, route)
        elif entry.name:
            yield ":".join((*names, entry.name)), params + found, entry, route


def _module(entry: URLPattern) -> str:
    callback = entry.callback
    return getattr(callback, "__module__", "") or ""


def all_patterns() -> list[tuple[str, tuple[str, ...], URLPattern, str]]:
    seen = {}
    for name, params, entry, route in _iter(get_resolver()):
        seen.setdefault((name, params), (name, params, entry, route))
    return list(seen.values())


def _classify(name: str, entry: URLPattern, route: str) -> str:
    if name.split(":")[0] in OWN_TESTS or route.startswith("admin/"):
        return "own"
    if _module(entry).startswith("allauth"):
        return "own"
    if route.startswith("accounts/"):
        return "own"
    return "check"


PATTERNS = [p for p in all_patterns() if _classify(p[0], p[2], p[3]) == "check"]


@pytest.fixture
def world(tenant, owner, viewer, outsider) -> World:
    invitation = Invitation.objects.create(
        tenant=tenant, email="invitee@example.org", role=Role.MEMBER,
        token_hash=Invitation.new_token()[1], invited_by=owner,
        expires_at=Invitation.default_expiry())
    MembershipFactory(tenant=tenant, role=Role.MEMBER)
    return World(tenant=tenant, owner=owner, viewer=viewer, outsider=outsider,
                 invitation=invitation, extra={})


def _url(name: str, params: tuple[str, ...], world: World) -> str:
    missing = [p for p in params if p not in PARAM_SAMPLES]
    assert not missing, (
        f"{name}: add a sample value for URL parameter(s) {missing} to PARAM_SAMPLES"
    )
    return reverse(name, kwargs={p: PARAM_SAMPLES[p](world) for p in params})


def _is_api(route: str) -> bool:
    return route.startswith("api/")


def _ids(p):
    return p[0]


def test_every_named_url_is_classified():
    """A URL outside tenants must be public, own-tested or listed as not tenant-scoped."""
    unlisted = [name for name, params, _entry, route in PATTERNS
                if "tenant_slug" not in params and not _is_api(route)
                and name not in PUBLIC and name not in NOT_TENANT_SCOPED]
    assert not unlisted, f"classify these URLs in {__name__}: {unlisted}"


@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids)
def test_anonymous_is_sent_to_login(pattern, world, client):
    name, params, _entry, route = pattern
    if name in PUBLIC:
        return
    url = _url(name, params, world)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if _is_api(route):
            assert response.status_code in (401, 403), (method, url, response.status_code)
        else:
            assert response.status_code == 302, (method, url, response.status_code)
            assert "/accounts/login/" in response["Location"], (method, url)


TENANT_PATTERNS = [p for p in PATTERNS if "tenant_slug" in p[1]]


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=_ids)
def test_outsider_gets_404(pattern, world, client_for):
    name, params, _entry, _route = pattern
    client = client_for(world.outsider)
    url = _url(name, params, world)
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(client, method)(url)
        assert response.status_code == 404, (method, url, response.status_code)


def _required_perm(entry: URLPattern) -> str | None:
    callback = entry.callback
    while callback is not None:
        perm = getattr(callback, "tenant_perm", None)
        if perm:
            return perm
        callback = getattr(callback, "__wrapped__", None)
    return None


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=_ids)
def test_viewer_cannot_change_state(pattern, world, client_for):
    name, params, entry, route = pattern
    client = client_for(world.viewer)
    url = _url(name, params, world)
    perm = _required_perm(entry)
    get = client.get(url)
    if perm in WRITE_PERMS:
        assert get.status_code == 403, (url, get.status_code)
    else:
        state = VIEWER_GET_STATES.get(name, (200, ""))[0]
        assert get.status_code in (200, 403, 405, state), (url, get.status_code)
    if name in VIEWER_MAY_POST:
        return
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(url)
        assert response.status_code in (403, 405), (method, url, response.status_code)


def test_the_walk_covers_the_tenancy_urls():
    names = {p[0] for p in TENANT_PATTERNS}
    assert {"members", "member_invite", "member_role", "audit_log", "tenant_leave"} <= names
