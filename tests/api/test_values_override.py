"""The API's JSON ``values_override`` goes through the same values checks as the pages' YAML:
a refused document is a 400 problem pointing at it, and nothing is stored or sent. The
actions check specs with the same rules whatever made them."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from clusters import actions
from clusters.models import Cluster, Operation
from cozystack import values
from cozystack.specs import AddonSpec
from portal.audit import Actor
from portal.models import Membership
from portal.tenancy import TenantContext
from tests.api.test_clusters import BASE, spec
from tests.clusters.conftest import cluster_spec

pytestmark = pytest.mark.django_db

POINTER = "#/addons/cert_manager/values_override"


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def body_with(override_json: str) -> str:
    body = json.dumps(spec(addons={"cert_manager": {"enabled": True,
                                                    "values_override": "OVERRIDE"}}))
    return body.replace('"OVERRIDE"', override_json)


REFUSED = {
    "non-finite": '{"cert-manager": {"ratio": 1e400}}',
    "negative-non-finite": '{"cert-manager": {"ratio": -1e400}}',
    "beyond-64-bits": '{"cert-manager": {"replicas": 1' + "0" * 30 + "}}",
    "too-deep": '{"cert-manager": ' + nested(values.MAX_DEPTH) + "}",
    "nul": '{"cert-manager": {"name": "a\\u0000b"}}',
    "too-large": '{"cert-manager": {"blob": "' + "a" * (values.MAX_BYTES + 1) + '"}}',
}


@pytest.mark.parametrize("override", REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_values_override_is_a_400_pointing_at_it(owner, api, tenant, override):
    response = api(owner).post(BASE, body_with(override), content_type="application/json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert [e["pointer"] for e in response.json()["errors"]] == [POINTER]
    assert not Cluster.objects.exists() and not Operation.objects.exists()


def test_json_nan_and_infinity_literals_are_a_400(owner, api, tenant):
    for literal in ("NaN", "Infinity", "-Infinity"):
        response = api(owner).post(BASE, body_with('{"cert-manager": {"x": ' + literal + "}}"),
                                   content_type="application/json")
        assert response.status_code == 400, literal
    assert not Cluster.objects.exists()


def test_a_plain_values_override_is_taken(owner, api, tenant):
    response = api(owner).post(BASE, body_with('{"cert-manager": {"replicaCount": 2}}'),
                               content_type="application/json")

    assert response.status_code == 201, response.content
    stored = Cluster.objects.get().addons["certManager"]["values_override"]
    assert stored == {"cert-manager": {"replicaCount": 2}}


@pytest.mark.parametrize("override", [{"cert-manager": {"ratio": float("inf")}},
                                      {"cert-manager": {"ratio": float("nan")}},
                                      {"cert-manager": {"replicas": 10**30}}])
def test_the_create_action_refuses_what_the_values_rules_refuse(tenant, owner, override):
    membership = Membership.objects.get(user=owner, tenant=tenant)
    ctx = TenantContext(tenant, membership.role, membership)
    spec_ = cluster_spec(addons=(AddonSpec(key="certManager", enabled=True,
                                           values_override=override),))

    with pytest.raises(ValidationError) as refused:
        actions.do_create_cluster(Actor(user=owner), ctx, spec_)

    assert "addons.certManager.values_override" in refused.value.message_dict
    assert not Cluster.objects.exists()
