"""Webhooks over the REST API: the same actions as the pages, tenant-scoped, owners and admins
only, every change audited, the secret only in the answers that create one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifications import delivery
from notifications.models import Delivery, WebhookEndpoint
from notifications.publishing import record_event
from portal.models import AuditEntry
from tests.api.factories import make_token

pytestmark = pytest.mark.django_db
BASE = "/api/v1/tenants/acme/webhooks/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = {"target_url": "https://hooks.example.com/portal",
        "event_types": ["cluster.ready", "operation.failed"], "description": "CI"}


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    def make(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
        return client

    return make


def test_create_read_change_and_delete_a_webhook(api_client, tenant, owner):
    client = api_client(owner)
    created = client.post(BASE, BODY, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["secret_hint"] == body["secret"][:10]
    assert body["status"] == "active" and body["event_types"] == BODY["event_types"]
    assert created["Location"] == body["url"]

    read = client.get(body["url"]).json()
    assert "secret" not in read and read["target_url"] == BODY["target_url"]
    assert [w["id"] for w in client.get(BASE).json()["results"]] == [body["id"]]

    changed = client.patch(body["url"], {"enabled": False, "event_types": ["cluster.deleted"]},
                           format="json")
    assert changed.status_code == 200
    assert (changed.json()["status"], changed.json()["event_types"]) == (
        "disabled", ["cluster.deleted"])

    assert client.delete(body["url"]).status_code == 204
    assert not WebhookEndpoint.objects.exists()
    verbs = set(AuditEntry.objects.filter(tenant=tenant, via="api").values_list("verb",
                                                                              flat=True))
    assert {"webhook.create", "webhook.update", "webhook.delete"} <= verbs


@pytest.mark.parametrize(("target", "code"), [
    ("http://hooks.example.com/", "https_only"),
    ("https://10.0.0.7/hook", "not_public"),
    ("https://[::ffff:169.254.169.254]/", "not_public"),
])
def test_a_target_that_is_not_public_https_is_refused_at_its_field(api_client, owner, tenant,
                                                                   target, code):
    response = api_client(owner).post(BASE, {**BODY, "target_url": target}, format="json")
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("target_url", code)


def test_rotation_answers_the_new_secret_once_and_keeps_the_old_one_signing(api_client, owner,
                                                                           tenant):
    client = api_client(owner)
    created = client.post(BASE, BODY, format="json").json()
    rotated = client.post(created["url"] + "rotate-secret/", {"overlap_hours": 1},
                          format="json")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    assert "secret" not in client.get(created["url"]).json()
    refused = client.post(created["url"] + "rotate-secret/", {"overlap_hours": 5},
                          format="json")
    assert refused.status_code == 400


def test_answers_with_a_secret_are_never_replayed_from_the_idempotency_store(api_client,
                                                                            owner):
    client = api_client(owner)
    first = client.post(BASE, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post(BASE, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.json()["secret"] != second.json()["secret"]
    from portal.models import IdempotencyRecord
    assert not IdempotencyRecord.objects.exists()


def test_test_event_delivery_log_and_redelivery(api_client, owner, tenant, receiver):
    client = api_client(owner)
    created = client.post(BASE, {**BODY, "target_url": receiver.url("/ok")},
                          format="json").json()
    tested = client.post(created["url"] + "test/")
    assert tested.status_code == 202 and tested["Location"] == tested.json()["url"]
    test_id = tested.json()["id"]
    Delivery.objects.filter(pk=test_id).update(next_attempt_at=T0)
    delivery.attempt(test_id, now=T0)

    record_event(tenant, "cluster.ready", {"cluster": {"name": "prod"}})
    listed = client.get(created["deliveries_url"]).json()["results"]
    assert [d["event"]["type"] for d in listed] == ["cluster.ready", "webhook.test"]
    detail = client.get(tested.json()["url"]).json()
    assert detail["state"] == "succeeded" and not detail["retries"]
    [attempt] = detail["attempt_log"]
    assert (attempt["outcome"], attempt["status_code"]) == ("success", 200)
    assert attempt["response_excerpt"] == '{"received": true}'
    assert detail["body"]["type"] == "webhook.test" and detail["body"]["tenant"] == "acme"

    pending = listed[0]
    assert client.post(pending["url"] + "redeliver/").status_code == 409
    again = client.post(tested.json()["url"] + "redeliver/")
    assert again.status_code == 202 and again.json()["redelivery_of"] == test_id
    assert again.json()["event"]["id"] == detail["event"]["id"]
    verbs = set(AuditEntry.objects.filter(tenant=tenant).values_list("verb", flat=True))
    assert {"webhook.test", "webhook.redeliver"} <= verbs


@pytest.mark.parametrize("role", ["member", "viewer", "billing_user"])
def test_other_roles_are_refused(request, api_client, tenant, owner, role, make_endpoint):
    endpoint = make_endpoint("https://hooks.example.com/a").endpoint
    client = api_client(request.getfixturevalue(role))
    assert client.get(BASE).status_code == 403
    assert client.post(BASE, BODY, format="json").status_code == 403
    assert client.post(f"{BASE}{endpoint.pk}/test/").status_code == 403
    assert client.post(f"{BASE}{endpoint.pk}/rotate-secret/", {}, format="json"
                       ).status_code == 403


def test_an_admin_may_and_an_outsider_finds_nothing(api_client, tenant, tenant_admin, outsider,
                                                    make_endpoint):
    endpoint = make_endpoint("https://hooks.example.com/a").endpoint
    assert api_client(tenant_admin).get(f"{BASE}{endpoint.pk}/").status_code == 200
    client = api_client(outsider)
    for method, path in (("get", BASE), ("get", f"{BASE}{endpoint.pk}/"),
                         ("delete", f"{BASE}{endpoint.pk}/"),
                         ("post", f"{BASE}{endpoint.pk}/rotate-secret/"),
                         ("get", f"{BASE}{endpoint.pk}/deliveries/")):
        assert getattr(client, method)(path).status_code == 404, (method, path)
    # Their own tenant's URL with this tenant's webhook id finds nothing either.
    other = f"/api/v1/tenants/globex/webhooks/{endpoint.pk}/"
    assert client.get(other).status_code == 404
    assert client.delete(other).status_code == 404
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_a_read_only_token_cannot_change_webhooks(tenant, owner, make_endpoint):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(owner, scope='read')}")
    assert client.get(BASE).status_code == 200
    assert client.post(BASE, BODY, format="json").status_code == 403


def test_the_openapi_document_describes_every_webhook_and_its_envelope(client):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    from portal.notifications import CATALOGUE

    assert set(document["webhooks"]) == {*CATALOGUE, "webhook.test"}
    schemas = document["components"]["schemas"]
    for name, hook in document["webhooks"].items():
        post = hook["post"]
        assert "Portal-Signature" in post["description"] and post["summary"], name
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        envelope = schemas[ref.rsplit("/", 1)[1]]
        assert set(envelope["required"]) == {"id", "type", "time", "tenant", "data"}, name
    failed = schemas["OperationFailedEvent"]["properties"]["data"]["allOf"][0]["$ref"]
    operation = schemas[schemas[failed.rsplit("/", 1)[1]]["properties"]["operation"]["allOf"][0]
                        ["$ref"].rsplit("/", 1)[1]]
    assert "error_class" in operation["properties"]
