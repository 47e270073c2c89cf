"""The API enforces the one permission table exactly like the pages: one row per persona."""

from __future__ import annotations

import pytest

from tests.api.factories import make_cluster, make_operation

pytestmark = pytest.mark.django_db

T = "/api/v1/tenants/acme/"
NEW = {"name": "new", "node_groups": [{"name": "md0", "instance_type": "s1.large",
                                       "min_replicas": 1, "max_replicas": 2}]}

# (method, path, body) → expected status per persona.
MATRIX = [
    (("get", "", None), dict(owner=200, tenant_admin=200, member=200, viewer=200,
                             billing_user=200, outsider=404)),
    (("get", "clusters/", None), dict(owner=200, tenant_admin=200, member=200, viewer=200,
                                      billing_user=403, outsider=404)),
    (("get", "clusters/prod-eu/events/", None), dict(owner=200, member=200, viewer=200,
                                                    billing_user=403, outsider=404)),
    (("post", "clusters/", NEW), dict(owner=201, tenant_admin=201, member=201, viewer=403,
                                      billing_user=403, outsider=404)),
    (("patch", "clusters/prod-eu/node-groups/md0/", {"max_replicas": 5}),
     dict(owner=202, member=202, viewer=403, billing_user=403, outsider=404)),
    (("delete", "clusters/prod-eu/", None), dict(owner=202, tenant_admin=202, member=403,
                                                 viewer=403, billing_user=403, outsider=404)),
    (("post", "operations/{op}/retry/", None), dict(owner=202, member=202, viewer=403,
                                                   billing_user=403, outsider=404)),
    (("get", "usage/", None), dict(owner=200, member=200, viewer=200, billing_user=200,
                                   outsider=404)),
    (("get", "invoices/", None), dict(owner=200, tenant_admin=200, member=403, viewer=403,
                                      billing_user=200, outsider=404)),
    (("get", "clusters/prod-eu/manifest/", None), dict(owner=200, viewer=200,
                                                      billing_user=403, outsider=404)),
]

CASES = [(request, persona, status) for request, expected in MATRIX
         for persona, status in expected.items()]


@pytest.mark.parametrize(("request_", "persona", "status"), CASES,
                         ids=[f"{r[0]} {r[1] or '/'} as {p}" for r, p, _s in CASES])
def test_each_persona_gets_what_the_permission_table_says(request, api, tenant, owner,
                                                         request_, persona, status):
    cluster = make_cluster(tenant)
    failed = make_operation(cluster, kind="scale", state="failed")
    method, path, body = request_
    client = api(request.getfixturevalue(persona))
    response = getattr(client, method)(T + path.format(op=failed.pk), body, format="json")
    assert response.status_code == status, response.content
