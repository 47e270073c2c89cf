"""A tenant quota on the platform that refuses a change (the hierarchical quota's 422 of v1.6,
or a ResourceQuota's 403) fails the operation as a quota problem, with its numbers."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from clusters import actions
from clusters.models import Cluster, Operation
from cozystack.gateway import QuotaShortfall, quota_message, quota_shortfalls
from cozystack.simulator import Fault
from tests.api.factories import make_token
from tests.clusters.ui import url

PARENT = ('Tenant.apps.cozystack.io "dev" is invalid: spec.resourceQuotas[cpu]: Forbidden: '
          'requested 8 exceeds the parent tenant\'s remaining "cpu" quota of 4 (parent allows '
          "16, 8 already allocated to sibling tenants, 4 currently in use by the parent pool); "
          "a child tenant may not be granted more quota than its parent has left")
RESOURCE = ('virtualmachines "kubernetes-demo-md0-x" is forbidden: exceeded quota: '
            "tenant-quota-allocated, requested: limits.cpu=8,limits.memory=16Gi, used: "
            "limits.cpu=12,limits.memory=40Gi, limited: limits.cpu=16,limits.memory=48Gi")


def test_both_refusals_are_read_with_their_numbers():
    assert quota_shortfalls(PARENT) == (
        QuotaShortfall("cpu", "8", "4", limit="16", used="4", allocated="8"),)
    assert quota_shortfalls(RESOURCE) == (
        QuotaShortfall("limits.cpu", "8", "4", limit="16", used="12"),
        QuotaShortfall("limits.memory", "16Gi", "8Gi", limit="48Gi", used="40Gi"))
    assert quota_shortfalls("admission webhook denied the request: nope") == ()
    assert quota_message(quota_shortfalls(PARENT)) == (
        "The tenant's quota on the platform does not allow this: cpu: 8 requested, 4 left "
        "(limit 16, 8 given to other tenants, 4 in use). Ask for a higher quota, or ask for "
        "less.")


@pytest.mark.django_db
@pytest.mark.parametrize("detail", [PARENT, RESOURCE])
def test_a_refused_creation_fails_as_a_quota_problem_shown_with_its_numbers(
        engine, detail, client_for, owner, tenant):
    engine.platform.faults.add(Fault(method="POST", path="kuberneteses", status=422,
                                     message=detail, times=1))
    cluster = engine.create()
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.FAILED
    assert operation.error_class == Operation.ErrorClass.QUOTA
    expected = quota_message(quota_shortfalls(detail))
    assert operation.error_message == expected
    assert Cluster.objects.get(pk=cluster.pk).phase == Cluster.Phase.FAILED
    page = client_for(owner).get(url("detail", tenant, cluster_name="demo")).content.decode()
    problem = page[page.index('data-testid="problem"'):]
    assert "Quota exceeded" in problem and "8 requested" in problem
    client = APIClient()  # the API says the same
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")
    error = client.get(f"/api/v1/tenants/acme/operations/{operation.pk}/").json()["error"]
    assert error["code"] == "quota" and error["message"] == expected


@pytest.mark.django_db
def test_a_quota_refusal_found_later_in_the_platforms_conditions_has_its_numbers_too():
    from clusters.progress import explain_failure

    assert explain_failure(f"Helm upgrade failed: {RESOURCE}") == (
        Operation.ErrorClass.QUOTA, quota_message(quota_shortfalls(RESOURCE)))


@pytest.mark.django_db
@pytest.mark.parametrize("used", ["4", None], ids=["pool-usage-counted", "earlier-wording"])
def test_the_simulated_hierarchical_quota_refuses_a_change_synchronously_with_its_numbers(
        engine, used):
    cluster = engine.create()
    assert engine.settle(cluster, seconds=60).state == Operation.State.SUCCEEDED
    engine.platform.refuse_for_parent_quota(method="PUT", requested="8", remaining="4",
                                            parent_limit="16", allocated="8", used=used)
    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=3, max_replicas=4)
    operation = engine.settle(cluster)
    assert engine.platform.requests("PUT", "kuberneteses")[-1].status == 422
    assert operation.state == Operation.State.FAILED
    assert operation.error_class == Operation.ErrorClass.QUOTA
    in_use = ", 4 in use" if used else ""
    assert operation.error_message == (
        "The tenant's quota on the platform does not allow this: cpu: 8 requested, 4 left "
        f"(limit 16, 8 given to other tenants{in_use}). Ask for a higher quota, or ask for "
        "less.")
