"""A cluster's custom API host: unique across every tenant's live clusters, never an address, an
internal name, the portal itself or a name under the platform's domain; the action, the create
form and its validate-as-you-type check all say why (the API: tests/api/test_hosts.py)."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from clusters import actions
from clusters.checks import check_platform_root_host
from clusters.models import Cluster, Operation
from tests.api.factories import make_cluster
from tests.clusters.conftest import cluster_spec
from tests.clusters.test_views_create import check, form_data
from tests.clusters.ui import field_errors, offline_platform, url

pytestmark = pytest.mark.django_db
__all__ = ["offline_platform"]


@pytest.fixture(autouse=True)
def portal_and_platform_hosts(settings):
    settings.PLATFORM_ROOT_HOST = "example.org"
    settings.ALLOWED_HOSTS = ["portal.example.ch", ".portal.example.net", "*"]
    settings.SITE_URL = "https://portal.example.ch"
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.console.example.com"]


def create(engine, host: str, name: str = "demo") -> Cluster:
    return engine.create(dataclasses.replace(cluster_spec(name), host=host))


def host_errors(engine, host: str, name: str = "demo") -> list[str]:
    """What the create action says about ``host``; it writes and enqueues nothing."""
    operations, queued = Operation.objects.count(), len(engine.outbox.queued)
    with pytest.raises(ValidationError) as error:
        create(engine, host, name)
    assert not Cluster.objects.filter(tenant=engine.ctx.tenant, name=name).exists()
    assert (Operation.objects.count(), len(engine.outbox.queued)) == (operations, queued)
    return error.value.message_dict["host"]


IP_ADDRESS = "is an IP address"
INTERNAL = "internal to the platform or a private network"
PORTAL = "belongs to this portal"
PLATFORM_DOMAIN = "Names under example.org belong to the platform and its tenants"
NOT_VALID = "is not valid"


@pytest.mark.parametrize(("host", "message"), [
    ("169.254.169.254", IP_ADDRESS),
    ("127.0.0.1", IP_ADDRESS),
    ("10.0.0.1", IP_ADDRESS),
    ("0x7f.0.0.1", IP_ADDRESS),
    ("0177.0.0.1", IP_ADDRESS),
    ("127.1", IP_ADDRESS),
    ("api.0x7f", IP_ADDRESS),
    ("2130706433", NOT_VALID),
    ("::1", NOT_VALID),
    ("[::1]", NOT_VALID),
    ("::ffff:169.254.169.254", NOT_VALID),
    ("kubernetes.default.svc", INTERNAL),
    ("kubernetes.default.svc.cluster.local", INTERNAL),
    ("kubernetes.default", INTERNAL),
    ("api.tenant-acme.svc", INTERNAL),
    ("db.cluster.local", INTERNAL),
    ("printer.local", INTERNAL),
    ("my.localhost", INTERNAL),
    ("metadata.google.internal", INTERNAL),
    ("localhost", NOT_VALID),
    ("kubernetes", NOT_VALID),
    ("portal.example.ch", PORTAL),
    ("api.portal.example.ch", PORTAL),
    ("portal.example.net", PORTAL),
    ("k8s.portal.example.net", PORTAL),
    ("k8s.eu.console.example.com", PORTAL),
    ("kubernetes-web.globex.example.org", PLATFORM_DOMAIN),
    ("globex.example.org", PLATFORM_DOMAIN),
    ("example.org", PLATFORM_DOMAIN),
    ("dashboard.example.org", PLATFORM_DOMAIN),
    ("kubernetes-other.acme.example.org", PLATFORM_DOMAIN),
    ("app.acme.example.org", PLATFORM_DOMAIN),
])
def test_a_reserved_host_is_refused_with_the_reason(engine, host, message):
    errors = host_errors(engine, host)

    assert any(message in error for error in errors), errors
    assert len(errors) == 1


def test_names_under_the_platform_domain_point_at_the_default(engine):
    errors = host_errors(engine, "kubernetes-web.globex.example.org")

    assert errors == ["Names under example.org belong to the platform and its tenants. Leave "
                      "the field empty to get kubernetes-demo.acme.example.org, or choose a "
                      "name in a domain of your own."]


def test_the_clusters_own_default_host_and_a_domain_of_its_own_are_accepted(engine):
    assert create(engine, "kubernetes-demo.acme.example.org").host == \
        "kubernetes-demo.acme.example.org"
    assert create(engine, "k8s.acme-corp.ch", name="shop").host == "k8s.acme-corp.ch"
    assert create(engine, "", name="plain").host == ""
    assert create(engine, "", name="plain-two").host == ""


def test_a_host_of_another_tenants_cluster_is_in_use_without_saying_whose(engine, other_tenant):
    make_cluster(other_tenant, "secret-project", host="api.globex-corp.com")

    errors = host_errors(engine, "api.globex-corp.com")

    assert errors == ["The host name “api.globex-corp.com” is already in use; choose another."]


def test_a_host_of_the_tenants_own_cluster_is_in_use(engine):
    create(engine, "k8s.acme-corp.ch", name="first")

    assert host_errors(engine, "k8s.acme-corp.ch", name="second") == [
        "The host name “k8s.acme-corp.ch” is already in use; choose another."]


def test_a_deleted_clusters_host_is_free_again(engine, other_tenant):
    make_cluster(other_tenant, "gone", host="api.example.com", deleted_at=timezone.now(),
                 phase=Cluster.Phase.DELETED)

    assert create(engine, "api.example.com").host == "api.example.com"


def test_the_database_refuses_two_live_clusters_with_one_host(tenant, other_tenant):
    make_cluster(tenant, "first", host="api.example.com")
    make_cluster(tenant, "gone", host="api.example.com", deleted_at=timezone.now())
    make_cluster(tenant, "no-host-one")
    make_cluster(other_tenant, "no-host-two")

    with pytest.raises(IntegrityError), transaction.atomic():
        make_cluster(other_tenant, "second", host="api.example.com")


def test_a_create_that_loses_the_race_for_a_host_says_it_is_in_use(engine, other_tenant,
                                                                   monkeypatch):
    # The other tenant's creation commits between this one's check and its insert.
    def taken_meanwhile(tenant, spec, *, cluster_id=None):
        make_cluster(other_tenant, "racer", host=spec.host)
        return []

    monkeypatch.setattr(actions, "check_api_host", taken_meanwhile)

    errors = host_errors(engine, "api.example.com")

    assert errors == ["The host name “api.example.com” is already in use; choose another."]
    assert list(Cluster.objects.values_list("name", flat=True)) == ["racer"]


def test_a_retried_creation_keeps_its_own_host(engine):
    cluster = create(engine, "k8s.acme-corp.ch")
    operation = cluster.operations.get()
    operation.state = Operation.State.FAILED
    operation.finished_at = timezone.now()
    operation.save()

    retry = engine.act(actions.do_retry_operation, operation.pk)

    assert retry.kind == Operation.Kind.CREATE
    cluster.refresh_from_db()
    assert cluster.host == "k8s.acme-corp.ch"


def test_the_host_rule_leaves_existing_clusters_changes_alone(engine, tenant):
    # A cluster created before the rule, with a name now reserved, can still be changed.
    cluster = create(engine, "k8s.acme-corp.ch")
    cluster.operations.update(state=Operation.State.SUCCEEDED, finished_at=timezone.now())
    Cluster.objects.filter(pk=cluster.pk).update(host="legacy.example.org",
                                                 phase=Cluster.Phase.RUNNING)

    operation = engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1,
                           max_replicas=4)

    assert operation.kind == Operation.Kind.SCALE


def test_without_a_platform_root_host_the_deploy_check_warns(settings):
    settings.PLATFORM_ROOT_HOST = ""
    assert [w.id for w in check_platform_root_host(None)] == ["clusters.W001"]
    settings.PLATFORM_ROOT_HOST = "example.ch"
    assert check_platform_root_host(None) == []


# --------------------------------------------------------------------------- the create form


@pytest.mark.usefixtures("offline_platform")
@pytest.mark.parametrize(("host", "message"), [
    ("169.254.169.254", IP_ADDRESS),
    ("kubernetes.default.svc", INTERNAL),
    ("portal.example.ch", PORTAL),
    ("kubernetes-web.globex.example.org", PLATFORM_DOMAIN),
])
def test_the_form_says_why_a_host_is_refused_as_you_type(client_for, member, tenant, host,
                                                         message):
    response = check(client_for(member), tenant, host=host)

    errors = field_errors(response, "host")
    assert any(message in error for error in errors), errors


@pytest.mark.usefixtures("offline_platform")
def test_submitting_a_host_in_use_shows_it_beside_the_field(client_for, member, tenant,
                                                            other_tenant):
    make_cluster(other_tenant, "secret-project", host="api.example.com")

    response = client_for(member).post(url("create", tenant), form_data(host="api.example.com"))

    assert response.status_code == 422
    assert field_errors(response, "host") == [
        "The host name “api.example.com” is already in use; choose another."]
    assert "secret-project" not in response.content.decode()
    assert not Cluster.objects.filter(tenant=tenant).exists()


@pytest.mark.usefixtures("offline_platform")
def test_submitting_an_address_creates_nothing(client_for, member, tenant):
    response = client_for(member).post(url("create", tenant), form_data(host="127.0.0.1"))

    assert response.status_code == 422
    assert any(IP_ADDRESS in e for e in field_errors(response, "host"))
    assert not Cluster.objects.exists()
