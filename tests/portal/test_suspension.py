"""The limits staff put on a tenant: suspension and quotas.

A suspended tenant's members can still read and pay, but cannot create or change anything,
wherever they try (pages, the API, the actions underneath), and they are told why. Quotas hold
exactly at their limit: a request that lands on the limit passes, one unit over is refused with
the numbers.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from clusters import actions
from clusters.models import Cluster, Operation
from portal import actions as portal_actions
from portal.audit import Actor
from portal.models import Membership
from portal.permissions import Role
from portal.tenancy import access_tenant
from tests.api.factories import make_token
from tests.clusters.conftest import cluster_spec, group
from tests.clusters.ui import make_cluster, make_operation, offline_platform
from tests.portal.pages import visible_text

__all__ = ["offline_platform"]
pytestmark = pytest.mark.usefixtures("offline_platform")

REASON = "Invoice 2026-0042 is 60 days overdue"


@pytest.fixture
def suspended(tenant, owner, staff_with_mfa):
    """ACME with a running cluster, a failed and a queued operation, then suspended."""
    make_cluster(tenant, "web")
    failed = make_cluster(tenant, "broken")
    make_operation(failed, Operation.Kind.SCALE, state=Operation.State.FAILED,
                   error_class="timeout", error_message="stuck")
    make_operation(make_cluster(tenant, "slow"), Operation.Kind.SCALE,
                   state=Operation.State.QUEUED, submitted=False)
    portal_actions.do_suspend_tenant(Actor(user=staff_with_mfa, via="admin"), tenant,
                                     reason=REASON)
    tenant.refresh_from_db()
    return tenant


def owner_ctx(owner):
    return access_tenant(owner, "acme")


# --------------------------------------------------------------------------- pages


def test_members_of_a_suspended_tenant_are_told_why_on_every_page(client_for, owner, suspended):
    client = client_for(owner)
    for url in ("/t/acme/", "/t/acme/clusters/", "/t/acme/clusters/web/", "/t/acme/members/",
                "/t/acme/billing/"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert f"This tenant is suspended: {REASON}. You can read and pay, but not create or " \
            "change clusters." in visible_text(page), url


def test_members_of_a_suspended_tenant_can_still_read_and_pay(client_for, owner, suspended):
    from billing.invoicing import ensure_draft
    from billing.periods import Period

    invoice = ensure_draft(suspended.pk, Period.current().previous)
    client = client_for(owner)

    for url in ("/t/acme/billing/usage.csv", "/t/acme/billing/invoices/",
                f"/t/acme/billing/invoices/{invoice.pk}/",
                f"/t/acme/billing/invoices/{invoice.pk}/pdf/", "/t/acme/audit/"):
        assert client.get(url).status_code == 200, url


WRITES = [
    ("/t/acme/clusters/-/new/", {"name": "new", "version": "v1.34"}),
    ("/t/acme/clusters/web/groups/md0/scale/", {"scale-md0-min_replicas": "1",
                                                "scale-md0-max_replicas": "9"}),
    ("/t/acme/clusters/web/upgrade/", {"upgrade-version": "v1.35"}),
    ("/t/acme/clusters/web/delete/", {"delete-confirm": "web"}),
    ("/t/acme/settings/", {"name": "Renamed"}),
    ("/t/acme/members/invite/", {"email": "new@example.org", "role": "member"}),
    ("/t/acme/billing/budget/", {"amount": "100", "thresholds": "50,100"}),
]


@pytest.mark.parametrize(("url", "data"), WRITES, ids=[w[0] for w in WRITES])
def test_pages_refuse_every_change_and_say_why(client_for, owner, suspended, url, data):
    before = list(Cluster.objects.order_by("pk").values_list("phase", "deleted_at"))

    response = client_for(owner).post(url, data)

    assert response.status_code == 403
    assert f"This tenant is suspended: {REASON}" in visible_text(response)
    assert list(Cluster.objects.order_by("pk").values_list("phase", "deleted_at")) == before
    assert Cluster.objects.filter(tenant=suspended).count() == 3


def test_the_cluster_page_offers_no_change_to_a_suspended_tenant(client_for, owner, suspended):
    html = client_for(owner).get("/t/acme/clusters/web/").content.decode()

    assert "/t/acme/clusters/web/delete/" not in html
    assert "/t/acme/clusters/web/groups/md0/scale/" not in html


def test_lifting_the_suspension_gives_the_rights_back(client_for, owner, suspended,
                                                      staff_with_mfa):
    portal_actions.do_unsuspend_tenant(Actor(user=staff_with_mfa, via="admin"), suspended)

    response = client_for(owner).post("/t/acme/settings/", {"name": "ACME SA"})

    assert response.status_code == 302
    suspended.refresh_from_db()
    assert suspended.name == "ACME SA"
    assert "This tenant is suspended" not in visible_text(client_for(owner).get("/t/acme/"))


# --------------------------------------------------------------------------- the API


@pytest.fixture
def api_client(owner):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")
    return client


API_BASE = "/api/v1/tenants/acme/"


def test_the_api_reads_for_a_suspended_tenant(api_client, suspended):
    listed = api_client.get(API_BASE + "clusters/")
    detail = api_client.get(API_BASE + "clusters/web/")

    assert listed.status_code == 200 and len(listed.json()["results"]) == 3
    assert detail.status_code == 200


API_WRITES = [
    ("post", "clusters/", {"name": "new", "version": "v1.34", "node_groups": [
        {"name": "md0", "instance_type": "s1.large", "min_replicas": 1, "max_replicas": 3}]}),
    ("patch", "clusters/web/", {"addons": {"cert_manager": {"enabled": True}}}),
    ("post", "clusters/web/upgrade/", {}),
    ("delete", "clusters/web/", None),
    ("post", "clusters/web/node-groups/", {"name": "batch", "instance_type": "u1.large",
                                           "min_replicas": 1, "max_replicas": 2}),
]


@pytest.mark.parametrize(("method", "path", "body"), API_WRITES,
                         ids=[f"{m} {p}" for m, p, _b in API_WRITES])
def test_the_api_refuses_every_change_and_says_why(api_client, suspended, method, path, body):
    response = getattr(api_client, method)(API_BASE + path, body, format="json")

    assert response.status_code == 403, response.content
    assert REASON in response.json()["detail"]
    assert Cluster.objects.filter(tenant=suspended).count() == 3
    assert not Operation.objects.filter(state=Operation.State.QUEUED).exclude(
        cluster__name="slow").exists()


def test_the_api_refuses_retry_and_cancel(api_client, suspended):
    failed = Operation.objects.get(state=Operation.State.FAILED)
    queued = Operation.objects.get(state=Operation.State.QUEUED)

    retry = api_client.post(f"{API_BASE}operations/{failed.pk}/retry/", format="json")
    cancel = api_client.post(f"{API_BASE}operations/{queued.pk}/cancel/", format="json")

    assert (retry.status_code, cancel.status_code) == (403, 403)
    queued.refresh_from_db()
    assert queued.state == Operation.State.QUEUED


# --------------------------------------------------------------------------- the actions


ACTIONS = {
    "create": lambda a, c: actions.do_create_cluster(a, c, cluster_spec("new")),
    "scale": lambda a, c: actions.do_scale_node_group(a, c, "web", "md0", min_replicas=1,
                                                      max_replicas=4),
    "upgrade": lambda a, c: actions.do_upgrade_cluster(a, c, "web", "v1.35"),
    "add_group": lambda a, c: actions.do_add_node_group(a, c, "web", group("batch")),
    "delete": lambda a, c: actions.do_delete_cluster(a, c, "web", confirm="web"),
    "retry": lambda a, c: actions.do_retry_operation(
        a, c, Operation.objects.get(state=Operation.State.FAILED).pk),
    "cancel": lambda a, c: actions.do_cancel_operation(
        a, c, Operation.objects.get(state=Operation.State.QUEUED).pk),
    "rename": lambda a, c: portal_actions.do_rename_tenant(a, c, name="Renamed"),
    "invite": lambda a, c: portal_actions.do_invite(a, c, email="x@example.org", role="member"),
}


@pytest.mark.parametrize("name", ACTIONS)
def test_every_action_refuses_a_suspended_tenant_with_the_reason(owner, suspended, name):
    with pytest.raises(PermissionDenied) as refused:
        ACTIONS[name](Actor(user=owner), owner_ctx(owner))

    assert str(refused.value) == f"This tenant is suspended: {REASON}"
    assert Cluster.objects.filter(tenant=suspended, deleted_at__isnull=True).count() == 3
    assert Operation.objects.count() == 2


def test_a_tenant_suspended_after_the_page_loaded_is_refused_at_the_action(owner, tenant,
                                                                          staff_with_mfa):
    ctx = owner_ctx(owner)  # resolved before the suspension, as a request in flight would be
    make_cluster(tenant, "web")
    portal_actions.do_suspend_tenant(Actor(user=staff_with_mfa), tenant, reason=REASON)
    ctx.tenant.refresh_from_db()

    with pytest.raises(PermissionDenied):
        actions.do_create_cluster(Actor(user=owner), ctx, cluster_spec("new"))


# --------------------------------------------------------------------------- quotas


def create(owner, spec):
    return actions.do_create_cluster(Actor(user=owner), owner_ctx(owner), spec)


def quota_message(exc: ValidationError) -> str:
    return " ".join(exc.message_dict["quota"])


def small(name: str, nodes: int, *, itype: str = "u1.medium", gpus: tuple[str, ...] = ()):
    from cozystack import catalog
    from cozystack.specs import AddonSpec

    addons = (AddonSpec(key=catalog.GPU_OPERATOR, enabled=True),) if gpus else ()
    return cluster_spec(name, groups=(group("md0", instance_type=itype, min_replicas=1,
                                            max_replicas=nodes, gpus=gpus),), addons=addons)


def settled(name: str) -> None:
    """The creation finished (the platform is not part of these tests)."""
    Operation.objects.filter(cluster__name=name).update(state=Operation.State.SUCCEEDED,
                                                         finished_at=timezone.now())


def test_the_cluster_count_holds_at_its_limit(owner, tenant):
    tenant.quota_clusters = 2
    tenant.save()
    create(owner, small("one", 1))

    create(owner, small("two", 1))  # exactly at the limit
    with pytest.raises(ValidationError) as over:
        create(owner, small("three", 1))

    assert quota_message(over.value).startswith(
        "Clusters quota exceeded: 2 in use + 1 requested = 3, above the limit of 2.")
    assert Cluster.objects.filter(tenant=tenant).count() == 2


def test_vcpus_hold_at_their_limit_on_create_and_on_scale(owner, tenant):
    tenant.quota_vcpu = 4  # u1.medium: 1 vCPU a node, counted at the maximum
    tenant.save()

    create(owner, small("web", 4))
    settled("web")
    with pytest.raises(ValidationError) as over:
        actions.do_scale_node_group(Actor(user=owner), owner_ctx(owner), "web", "md0",
                                    min_replicas=1, max_replicas=5)

    assert quota_message(over.value).startswith(
        "vCPU quota exceeded: 4 in use + 1 requested = 5, above the limit of 4.")
    assert Cluster.objects.get(name="web").node_groups.get().max_replicas == 4


def test_memory_holds_at_its_limit(owner, tenant):
    tenant.quota_memory_gib = 16  # u1.medium: 4 GiB a node
    tenant.save()

    create(owner, small("web", 4))
    with pytest.raises(ValidationError) as over:
        create(owner, small("more", 1))

    assert quota_message(over.value).startswith(
        "Memory (GiB) quota exceeded: 16 in use + 4 requested = 20, above the limit of 16.")


def test_gpus_hold_at_their_limit(owner, tenant):
    tenant.quota_gpus = 2
    tenant.save()
    gpu = ("nvidia.com/AD102GL_L40S",)  # offered by every release the portal speaks

    create(owner, small("ml", 2, itype="u1.2xlarge", gpus=gpu))
    settled("ml")
    with pytest.raises(ValidationError) as over:
        actions.do_add_node_group(Actor(user=owner), owner_ctx(owner), "ml",
                                  group("gpu2", instance_type="u1.2xlarge", min_replicas=1,
                                        max_replicas=1, gpus=gpu, roles=()))

    assert quota_message(over.value).startswith(
        "GPUs quota exceeded: 2 in use + 1 requested = 3, above the limit of 2.")


def test_a_tenant_over_a_lowered_limit_may_still_shrink(owner, tenant):
    create(owner, small("web", 4))
    settled("web")
    tenant.quota_vcpu = 2
    tenant.save()

    actions.do_scale_node_group(Actor(user=owner), owner_ctx(owner), "web", "md0",
                                min_replicas=1, max_replicas=3)

    assert Cluster.objects.get(name="web").node_groups.get().max_replicas == 3


def test_the_platform_wide_default_applies_until_staff_set_a_limit(owner, tenant, settings):
    settings.TENANT_DEFAULT_QUOTA = {"clusters": 1, "vcpu": 256, "memory_gib": 1024, "gpus": 4}
    create(owner, small("one", 1))

    with pytest.raises(ValidationError) as over:
        create(owner, small("two", 1))
    assert "above the limit of 1" in quota_message(over.value)

    tenant.quota_clusters = 2
    tenant.save()
    create(owner, small("two", 1))
    assert Cluster.objects.filter(tenant=tenant).count() == 2


def test_the_quota_refusal_reaches_the_api_with_the_numbers(owner, tenant):
    from rest_framework.test import APIClient

    tenant.quota_clusters = 1
    tenant.save()
    make_cluster(tenant, "web")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")

    response = client.post(API_BASE + "clusters/", {
        "name": "second", "version": "v1.34", "node_groups": [
            {"name": "md0", "instance_type": "u1.medium", "min_replicas": 1,
             "max_replicas": 1}]}, format="json")

    assert response.status_code == 422
    assert "Clusters quota exceeded: 1 in use + 1 requested = 2, above the limit of 1." in \
        response.json()["errors"][0]["detail"]


def test_quota_edits_in_the_admin_take_effect_at_once(client_for, staff_with_mfa, owner,
                                                      tenant):
    from django.urls import reverse

    create(owner, small("web", 1))
    membership = Membership.objects.get(tenant=tenant, user=owner)
    response = client_for(staff_with_mfa).post(
        reverse("admin:portal_tenant_change", args=[tenant.pk]), {
            "name": "ACME", "invoice_language": "en", "quota_clusters": "1", "quota_vcpu": "",
            "quota_memory_gib": "",
            "quota_gpus": "", "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": str(membership.pk), "memberships-0-tenant": str(tenant.pk),
            "memberships-0-user": str(owner.pk), "memberships-0-role": Role.OWNER})
    assert response.status_code == 302

    with pytest.raises(ValidationError) as over:
        create(owner, small("second", 1))
    assert "above the limit of 1" in quota_message(over.value)
