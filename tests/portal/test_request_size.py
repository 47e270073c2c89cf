"""Request bodies have one size limit for the HTML forms and the API: a larger body is a 400
and changes nothing, so no page that shows input back grows with what a client sends."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from portal.models import Tenant

pytestmark = pytest.mark.django_db

LIMIT = 1024 * 1024


def test_the_limit_is_one_megabyte():
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == LIMIT


def test_a_form_post_over_the_limit_is_a_400_and_creates_nothing(client_for, owner):
    half = "a" * (LIMIT // 2 + 1)
    response = client_for(owner).post(reverse("tenant_create"), {"name": half, "slug": half})

    assert response.status_code == 400
    assert len(response.content) < LIMIT
    assert not Tenant.objects.filter(name=half).exists()


def test_an_api_body_over_the_same_limit_is_a_400_problem(owner, settings):
    from rest_framework.test import APIClient

    from tests.api.factories import make_token

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")
    body = '{"node_groups": [], "name": "' + "a" * 2000 + '"}'

    response = client.post("/api/v1/estimate/", body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_request"
