"""The webhook pages, in the tenant's settings: owners and admins add, change, rotate, test and
remove webhooks and read the delivery log; other roles are refused, other tenants see nothing.
And the page where each person chooses their emails."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import translation

from notifications import delivery
from notifications.models import Delivery, WebhookEndpoint
from notifications.publishing import record_event
from portal.models import AuditEntry, NotificationPreference
from tests.portal.pages import alerts, by_testid, field_errors, table_rows, visible_text

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def url(name: str, tenant, **kwargs) -> str:
    return reverse(f"webhooks:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


def secret_on(response) -> str:
    match = re.search(r'data-testid="secret-value"[^>]*?value="(whsec_[^"]+)"|'
                      r'value="(whsec_[^"]+)"[^>]*data-testid="secret-value"',
                      response.content.decode())
    assert match, "no secret on the page"
    return match.group(1) or match.group(2)


def test_an_owner_adds_a_webhook_and_sees_its_secret_once(client_for, tenant, owner):
    client = client_for(owner)
    response = client.post(url("create", tenant), {
        "url": "https://hooks.example.com/portal", "description": "CI",
        "event_types": ["cluster.ready", "operation.failed"], "enabled": "on"})
    assert response.status_code == 201
    secret = secret_on(response)
    endpoint = WebhookEndpoint.objects.get(tenant=tenant)
    assert endpoint.event_types == ["cluster.ready", "operation.failed"]
    assert secret not in endpoint.secret_sealed

    page = client.get(url("detail", tenant, webhook_id=endpoint.pk))
    assert secret not in page.content.decode()
    assert endpoint.secret_hint in visible_text(page)
    listing = client.get(url("list", tenant))
    assert table_rows(listing, "webhooks")[0][0].startswith("https://hooks.example.com/portal")
    assert AuditEntry.objects.filter(verb="webhook.create", tenant=tenant,
                                     actor=owner).count() == 1


@pytest.mark.parametrize(("target", "error"), [
    ("http://hooks.example.com/", "Webhooks are sent over HTTPS only"),
    ("https://169.254.169.254/latest/", "Webhooks go to public addresses only"),
    ("https://me:pw@hooks.example.com/", "Leave credentials out of the URL"),
])
def test_a_url_that_is_not_public_https_is_refused_beside_its_field(client_for, tenant, owner,
                                                                    target, error):
    response = client_for(owner).post(url("create", tenant), {
        "url": target, "event_types": ["cluster.ready"]})
    assert response.status_code == 422
    assert any(error in e for e in field_errors(response, "url"))
    assert not WebhookEndpoint.objects.exists()


def test_no_event_chosen_is_refused(client_for, tenant, owner):
    response = client_for(owner).post(url("create", tenant),
                                      {"url": "https://hooks.example.com/"})
    assert response.status_code == 422
    assert field_errors(response, "event_types") == ["Choose at least one event."]


def test_an_admin_changes_rotates_tests_and_removes_a_webhook(client_for, tenant, owner,
                                                              tenant_admin, make_endpoint):
    endpoint = make_endpoint("https://hooks.example.com/a").endpoint
    client = client_for(tenant_admin)
    response = client.post(url("update", tenant, webhook_id=endpoint.pk), {
        "url": "https://hooks.example.com/b", "event_types": ["cluster.deleted"]}, follow=True)
    assert "Webhook saved." in alerts(response)
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types, endpoint.enabled) == (
        "https://hooks.example.com/b", ["cluster.deleted"], False)

    rotated = client.post(url("rotate", tenant, webhook_id=endpoint.pk), {"overlap_hours": "24"})
    assert rotated.status_code == 200
    secret_on(rotated)
    assert by_testid(rotated, "overlap")

    tested = client.post(url("test", tenant, webhook_id=endpoint.pk), follow=True)
    assert "Test event sent" in " ".join(alerts(tested))
    assert Delivery.objects.get(endpoint=endpoint).event.type == "webhook.test"

    client.post(url("delete", tenant, webhook_id=endpoint.pk))
    assert not WebhookEndpoint.objects.exists()
    verbs = list(AuditEntry.objects.filter(tenant=tenant).values_list("verb", flat=True))
    for verb in ("webhook.update", "webhook.rotate_secret", "webhook.test", "webhook.delete"):
        assert verb in verbs


def test_the_delivery_log_shows_each_attempt_and_redelivers(client_for, tenant, owner,
                                                             receiver, make_endpoint):
    endpoint = make_endpoint(receiver.url("/fail")).endpoint
    record_event(tenant, "cluster.ready", {"cluster": {"name": "prod"}})
    row = Delivery.objects.get(endpoint=endpoint)
    Delivery.objects.filter(pk=row.pk).update(created_at=T0, next_attempt_at=T0,
                                              retries=False)
    delivery.attempt(row.pk, now=T0)

    client = client_for(owner)
    detail = client.get(url("detail", tenant, webhook_id=endpoint.pk))
    [cells] = table_rows(detail, "deliveries")
    assert "A cluster is ready" in cells[0] and "Failed" in cells[2] and "500" in cells[4]
    page = client.get(url("delivery", tenant, webhook_id=endpoint.pk, delivery_id=row.pk))
    attempts = " ".join(by_testid(page, "attempts"))
    assert "Error status" in attempts and "500" in attempts and "receiver is down" in attempts
    assert '"type": "cluster.ready"' in " ".join(by_testid(page, "delivery-body"))

    response = client.post(url("redeliver", tenant, webhook_id=endpoint.pk,
                                delivery_id=row.pk), follow=True)
    assert "Sent again" in " ".join(alerts(response))
    assert Delivery.objects.filter(redelivery_of=row).count() == 1


@pytest.mark.parametrize("role", ["member", "viewer", "billing_user"])
def test_other_roles_cannot_see_or_change_webhooks(request, client_for, tenant, role,
                                                   make_endpoint):
    endpoint = make_endpoint("https://hooks.example.com/a").endpoint
    client = client_for(request.getfixturevalue(role))
    assert client.get(url("list", tenant)).status_code == 403
    assert client.get(url("detail", tenant, webhook_id=endpoint.pk)).status_code == 403
    assert client.post(url("create", tenant), {
        "url": "https://hooks.example.com/", "event_types": ["cluster.ready"]}).status_code == 403
    assert client.post(url("test", tenant, webhook_id=endpoint.pk)).status_code == 403
    assert WebhookEndpoint.objects.count() == 1 and not Delivery.objects.exists()


def test_an_outsider_finds_nothing(client_for, tenant, outsider, other_tenant, make_endpoint):
    endpoint = make_endpoint("https://hooks.example.com/a").endpoint
    client = client_for(outsider)
    for path in (url("list", tenant), url("detail", tenant, webhook_id=endpoint.pk)):
        assert client.get(path).status_code == 404
    assert client.post(url("rotate", tenant, webhook_id=endpoint.pk),
                       {"overlap_hours": "0"}).status_code == 404
    # Nor through their own tenant's URL.
    assert client.get(url("detail", other_tenant, webhook_id=endpoint.pk)).status_code == 404
    assert client.post(url("delete", other_tenant, webhook_id=endpoint.pk)).status_code == 404
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_the_tenant_navigation_links_webhooks_for_owners_and_admins_only(client_for, tenant,
                                                                       owner, member):
    link = f'href="{url("list", tenant)}"'
    home = reverse("tenant_home", kwargs={"tenant_slug": tenant.slug})
    assert link in client_for(owner).get(home).content.decode()
    assert link not in client_for(member).get(home).content.decode()


def test_the_pages_speak_french(client_for, tenant, owner, make_endpoint):
    endpoint = make_endpoint("https://hooks.example.com/a").endpoint
    client = client_for(owner)
    with translation.override("fr"):
        listing = visible_text(client.get(url("list", tenant), HTTP_ACCEPT_LANGUAGE="fr"))
        detail = visible_text(client.get(url("detail", tenant, webhook_id=endpoint.pk),
                                         HTTP_ACCEPT_LANGUAGE="fr"))
    assert "Nouveau webhook" in listing
    assert "Envoyer un événement de test" in detail and "Secret de signature" in detail


# --------------------------------------------------------------------------- email preferences

PREFERENCES = reverse("notification_preferences")


def test_preferences_start_from_the_defaults_and_are_saved(client_for, user):
    client = client_for(user)
    page = client.get(PREFERENCES)
    checked = re.findall(r'name="(email_[\w]+)"[^>]*checked', page.content.decode())
    assert "email_operation__failed" in checked and "email_cluster__ready" in checked
    assert "email_operation__succeeded" not in checked

    response = client.post(PREFERENCES, {"email_operation__succeeded": "on"}, follow=True)
    assert "Email preferences saved." in alerts(response)
    chosen = dict(NotificationPreference.objects.filter(user=user)
                  .values_list("event_type", "email"))
    assert chosen["operation.succeeded"] is True and chosen["operation.failed"] is False
    entry = AuditEntry.objects.get(verb="notification_preferences.update")
    assert entry.changes["operation.succeeded"] == [False, True]


def test_the_profile_links_to_the_preferences(client_for, user):
    assert f'href="{PREFERENCES}"' in client_for(user).get(reverse("profile")).content.decode()
