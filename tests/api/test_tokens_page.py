"""Profile → API tokens: create (shown once, stored hashed), list with last use, revoke."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from portal.models import ApiToken, AuditEntry
from tests.api.factories import make_token

pytestmark = pytest.mark.django_db

PAGE = "/account/api-tokens/"


def test_the_profile_page_links_to_the_tokens(owner, client_for):
    assert PAGE in client_for(owner).get("/account/profile/").content.decode()


def test_a_new_token_is_shown_once_and_only_its_hash_is_kept(owner, client_for, tenant):
    client = client_for(owner)
    response = client.post(PAGE, {"name": "CI deploy", "scope": "read_write",
                                  "expires_in_days": "30", "tenant": str(tenant.pk)})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    secret = re.search(r'data-testid="token-secret"[^>]*value="(kp_[^"]+)"', page)
    secret = secret.group(1) if secret else re.search(r'value="(kp_[^"]+)"', page).group(1)
    token = ApiToken.objects.get(user=owner)
    assert token.name == "CI deploy" and token.scope == "read_write" and token.tenant == tenant
    assert token.token_hash == ApiToken.hash_token(secret) and secret not in token.token_hash
    assert AuditEntry.objects.filter(verb="api_token.create", actor=owner).exists()
    again = client.get(PAGE).content.decode()
    assert secret not in again and token.prefix in again

    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/me/").json()["token"]["name"] == "CI deploy"


def test_an_invalid_form_is_a_422_with_errors_beside_the_fields(owner, client_for,
                                                                other_tenant):
    response = client_for(owner).post(PAGE, {"name": "", "scope": "admin",
                                             "expires_in_days": "9999",
                                             "tenant": str(other_tenant.pk)})
    assert response.status_code == 422
    assert response.content.decode().count("field-error") >= 3
    assert not ApiToken.objects.exists()


def test_revoking_stops_the_token_and_is_recorded(owner, client_for):
    secret = make_token(owner)
    token = ApiToken.objects.get()
    Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/me/")
    page = client_for(owner).get(PAGE).content.decode()
    assert "never" not in page.split(token.prefix)[1][:400]  # last use is shown
    response = client_for(owner).post(f"{PAGE}{token.pk}/revoke/")
    assert response.status_code == 302
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/me/").status_code == 401
    assert AuditEntry.objects.filter(verb="api_token.revoke").count() == 1


def test_nobody_revokes_or_sees_someone_elses_token(owner, member, client_for):
    make_token(owner, name="owners-secret-job")
    token = ApiToken.objects.get()
    assert client_for(member).post(f"{PAGE}{token.pk}/revoke/").status_code == 404
    assert "owners-secret-job" not in client_for(member).get(PAGE).content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None
