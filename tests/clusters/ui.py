"""Helpers for the cluster page tests: clusters in given states without the platform, pages
read the way a person reads them, and a client signed in with a password (kubeconfig needs a
recent sign-in)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters import options, platform_quota, progress, schema
from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation
from cozystack.gateway import reset_gateway
from tests.factories import PASSWORD
from tests.portal.pages import by_testid, field_errors, visible_text  # noqa: F401 (re-export)

SCHEMA_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                            "LOCATION": "cluster-ui-tests"}}


@pytest.fixture
def offline_platform(settings, tmp_path):
    """No platform at all: caches in memory, the bundled schema (the portal's fallback), an
    in-memory channel layer. Tests that need the platform use ``platform`` instead."""
    from django.core.cache import cache

    settings.CACHES = SCHEMA_CACHE
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.PLATFORM_KUBECONFIG = str(tmp_path / "no-platform.kubeconfig")
    reset_gateway()
    schema.forget()
    options.forget_all()
    platform_quota.forget_all()
    yield
    cache.clear()
    reset_gateway()


def make_cluster(tenant, name: str = "demo", *, phase: str = Cluster.Phase.RUNNING,
                 version: str = "v1.34", groups: list[dict[str, Any]] | None = None,
                 status_message: str = "", last_error: str = "",
                 kubeconfig_ready: bool = True) -> Cluster:
    """A cluster as the engine would have left it, written straight to the database."""
    cluster = Cluster.objects.create(
        tenant=tenant, name=name, version=version, phase=phase,
        status_message=status_message or f"{phase.title()}.", last_error=last_error,
        platform_ready=phase == Cluster.Phase.RUNNING, kubeconfig_ready=kubeconfig_ready,
        conditions=[{"type": "Ready", "status": "True" if phase == "running" else "False",
                     "reason": "InstallSucceeded" if phase == "running" else "Progressing",
                     "message": "Helm install succeeded", "lastTransitionTime":
                         "2025-01-01T00:00:00Z"}],
        last_observed_at=timezone.now())
    for position, spec in enumerate(groups or [{"name": "md0"}]):
        NodeGroup.objects.create(**{
            "cluster": cluster, "position": position, "instance_type": "u1.medium",
            "min_replicas": 1, "max_replicas": 3, "disk_gib": 50, "roles": ["ingress-nginx"],
            "desired_nodes": 2, "observed_nodes": 2, "ready_nodes": 2, **spec})
    return cluster


def make_operation(cluster: Cluster, kind: str = Operation.Kind.CREATE, *,
                   state: str = Operation.State.SUCCEEDED, error_class: str = "",
                   error_message: str = "", submitted: bool = True, minutes_ago: int = 5,
                   step_states: dict[str, str] | None = None) -> Operation:
    created = timezone.now() - timedelta(minutes=minutes_ago)
    steps = progress.initial_steps(kind)
    for key, value in (step_states or {}).items():
        steps = progress.set_step(steps, key, value, now=created)
    spec = cluster.to_spec()
    from cozystack.specjson import spec_to_json

    return Operation.objects.create(
        tenant=cluster.tenant, cluster=cluster, kind=kind, state=state, steps=steps,
        error_class=error_class, error_message=error_message,
        params={"before": None if kind == "create" else spec_to_json(spec),
                "after": spec_to_json(spec)},
        created_at=created, started_at=created,
        submitted_at=created if submitted else None,
        finished_at=None if state in Operation.ACTIVE_STATES else timezone.now(),
        deadline_at=created + timedelta(minutes=20))


def make_event(cluster: Cluster, message: str, *, minutes_ago: int = 0,
               severity: str = "info", source: str = "platform") -> ClusterEvent:
    return ClusterEvent.objects.create(
        tenant=cluster.tenant, cluster=cluster, message=message, reason="Test",
        severity=severity, source=source, at=timezone.now() - timedelta(minutes=minutes_ago))


def url(name: str, tenant, **kwargs: Any) -> str:
    return reverse(f"clusters:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


def signed_in(user) -> Client:
    """A client signed in through the sign-in form, as a person is (a fresh sign-in)."""
    client = Client()
    response = client.post(reverse("account_login"), {"login": user.email,
                                                      "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return client


def text_of(html: str | bytes, element_id: str) -> str:
    """Visible text inside the element with ``id`` (first match)."""
    html = html.decode() if isinstance(html, bytes) else html
    start = html.index(f'id="{element_id}"')
    tag_start = html.rindex("<", 0, start)
    tag = re.match(r"<(\w+)", html[tag_start:]).group(1)
    depth, pos = 0, tag_start
    pattern = re.compile(rf"<(/?){tag}\b[^>]*>")
    for match in pattern.finditer(html, tag_start):
        depth += -1 if match.group(1) else 1
        if depth == 0:
            pos = match.end()
            break
    return visible_text(html[tag_start:pos])
