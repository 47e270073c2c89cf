"""Idempotency-Key: a retried write returns the first answer and never writes twice."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from clusters.models import Cluster, Operation
from portal.models import IdempotencyRecord
from tests.api.factories import make_token
from tests.fixtures.processes import isolated_broker_url, publishing_to

BASE = "/api/v1/tenants/acme/clusters/"


def spec(name: str = "web", max_replicas: int = 3) -> dict:
    return {"name": name, "node_groups": [{"name": "md0", "instance_type": "s1.large",
                                          "min_replicas": 1, "max_replicas": max_replicas}]}


@pytest.mark.django_db
def test_a_retried_create_returns_the_first_answer_and_creates_one_cluster(owner, api, tenant):
    client = api(owner)
    first = client.post(BASE, spec(), format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    again = client.post(BASE, spec(), format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == again.status_code == 201, (first.content, again.content)
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Cluster.objects.count() == 1 and Operation.objects.count() == 1
    assert Operation.objects.get().idempotency_key == "key-1"


@pytest.mark.django_db
def test_the_same_key_with_a_different_request_is_a_409(owner, api, tenant):
    client = api(owner)
    assert client.post(BASE, spec(), format="json",
                       HTTP_IDEMPOTENCY_KEY="key-2").status_code == 201
    other = client.post(BASE, spec(max_replicas=4), format="json", HTTP_IDEMPOTENCY_KEY="key-2")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    elsewhere = client.post(f"{BASE}web/upgrade/", {}, format="json",
                            HTTP_IDEMPOTENCY_KEY="key-2")
    assert elsewhere.status_code == 409
    assert Cluster.objects.count() == 1


@pytest.mark.django_db
def test_the_body_is_compared_by_meaning_not_by_bytes(owner, api, tenant):
    client = api(owner)
    client.post(BASE, '{"name": "web", "node_groups": [{"name": "md0", "instance_type": '
                '"s1.large", "min_replicas": 1, "max_replicas": 3}]}',
                content_type="application/json", HTTP_IDEMPOTENCY_KEY="key-3")
    again = client.post(BASE, '{"node_groups":[{"max_replicas":3,"min_replicas":1,'
                        '"instance_type":"s1.large","name":"md0"}],"name":"web"}',
                        content_type="application/json", HTTP_IDEMPOTENCY_KEY="key-3")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_failed_write_is_not_remembered_so_it_can_be_retried(owner, api, tenant):
    client = api(owner)
    tenant.quota_clusters = 0
    tenant.save()
    refused = client.post(BASE, spec(), format="json", HTTP_IDEMPOTENCY_KEY="key-4")
    assert refused.status_code == 422
    assert not IdempotencyRecord.objects.exists()
    tenant.quota_clusters = 5
    tenant.save()
    accepted = client.post(BASE, spec(), format="json", HTTP_IDEMPOTENCY_KEY="key-4")
    assert accepted.status_code == 201 and not accepted.has_header("Idempotent-Replayed")


@pytest.mark.django_db
def test_keys_belong_to_their_user(owner, member, api, tenant):
    assert api(owner).post(BASE, spec("a"), format="json",
                           HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    theirs = api(member).post(BASE, spec("b"), format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert theirs.status_code == 201 and theirs.json()["name"] == "b"


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9", "tab\there"])
def test_an_invalid_key_is_a_400(owner, api, tenant, key):
    response = api(owner).post(BASE, spec(), format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not Cluster.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_one_cluster(owner, tenant):
    from portal.celery import app

    secret = make_token(owner)
    attempts = 6
    barrier = threading.Barrier(attempts)
    responses: list = [None] * attempts

    def attempt(index: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        try:
            barrier.wait(timeout=10)
            responses[index] = client.post(BASE, spec(), format="json",
                                            HTTP_IDEMPOTENCY_KEY="race")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    # Nobody runs the queued creation in this test: it goes to a broker no worker reads (a
    # worker of the session would otherwise send it, and lock rows while the test ends).
    with publishing_to(isolated_broker_url(15)):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        app.control.purge()

    assert all(r is not None for r in responses)
    assert [r.status_code for r in responses] == [201] * attempts, [r.content for r in responses]
    assert len({r.json()["current_operation"]["id"] for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == attempts - 1
    assert Cluster.objects.count() == 1 and Operation.objects.count() == 1
