"""Every JSON body the API accepts is bounded in size and nesting depth: a body nested 2,000
deep or larger than the limit is a 400 problem, never a server error, on every write."""

from __future__ import annotations

import pytest
from django.conf import settings

from clusters.models import Cluster
from portal.api.parsers import MAX_BODY_DEPTH, nesting_depth
from tests.api.test_clusters import BASE, spec

pytestmark = pytest.mark.django_db

WRITES = [("post", BASE), ("put", f"{BASE}prod-eu/"), ("patch", f"{BASE}prod-eu/"),
          ("post", f"{BASE}prod-eu/node-groups/"), ("patch", f"{BASE}prod-eu/node-groups/md0/"),
          ("post", f"{BASE}prod-eu/upgrade/"), ("post", "/api/v1/estimate/")]


def deep(depth: int, *, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize("body", [deep(2000), '{"a": ' * 2000 + "1" + "}" * 2000,
                                  '{"name": ' + deep(MAX_BODY_DEPTH) + "}"],
                         ids=["arrays-2000", "objects-2000", "just-over"])
def test_a_body_nested_too_deep_is_a_400_problem(owner, api, cluster, method, path, body):
    response = getattr(api(owner), method)(path, body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert str(MAX_BODY_DEPTH) in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_body_over_the_size_limit_is_a_400_problem(owner, api, cluster, method, path):
    body = '{"name": "' + "a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + '"}'
    response = getattr(api(owner), method)(path, body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"


def test_a_body_within_the_limits_is_read(owner, api, tenant):
    response = api(owner).post(BASE, spec(), format="json")

    assert response.status_code == 201
    assert Cluster.objects.filter(name="web").exists()


@pytest.mark.parametrize(("text", "depth"), [
    ("{}", 1), ('{"a": [1, {"b": []}]}', 4), ('{"a": "[[[[{{{{"}', 1),
    (r'{"a": "\"[[[[", "b": [[]]}', 3), ("1", 0), ('"]]]"', 0),
])
def test_nesting_is_counted_outside_strings(text, depth):
    assert nesting_depth(text, stop_above=100) == depth


def test_counting_stops_just_above_the_limit():
    assert nesting_depth(deep(10_000), stop_above=5) == 6


def test_the_body_depth_leaves_room_for_the_deepest_values_document_in_a_spec():
    from cozystack import values
    from portal.api.parsers import MAX_BODY_DEPTH

    assert MAX_BODY_DEPTH >= values.MAX_DEPTH + 8
