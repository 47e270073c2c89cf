"""A tenant's quota is a number staff set, within the range ``QUOTA_MAX`` gives each
dimension: the admin form and the quota action refuse anything else and store nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from portal import actions
from portal.audit import Actor
from portal.models import QUOTA_MAX, Tenant
from tests.portal.pages import visible_text
from tests.portal.test_staff import tenant_form

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("dimension", list(QUOTA_MAX))
def test_a_quota_above_its_range_is_refused_by_the_model(tenant, dimension):
    setattr(tenant, f"quota_{dimension}", QUOTA_MAX[dimension] + 1)

    with pytest.raises(ValidationError) as refused:
        tenant.full_clean()

    assert list(refused.value.message_dict) == [f"quota_{dimension}"]


@pytest.mark.parametrize("dimension", list(QUOTA_MAX))
def test_the_highest_quota_is_accepted(tenant, dimension):
    setattr(tenant, f"quota_{dimension}", QUOTA_MAX[dimension])
    tenant.full_clean()


def test_the_quota_action_refuses_a_huge_quota_and_keeps_the_old_one(tenant, staff_with_mfa):
    with pytest.raises(ValidationError):
        actions.do_set_quota(Actor(user=staff_with_mfa), tenant, vcpu=10**9, gpus=2)

    tenant.refresh_from_db()
    assert (tenant.quota_vcpu, tenant.quota_gpus) == (None, None)


def test_the_admin_shows_the_quota_range_beside_the_field(client_for, staff_with_mfa, tenant):
    response = client_for(staff_with_mfa).post(
        reverse("admin:portal_tenant_change", args=[tenant.pk]),
        tenant_form(slug="acme", name="ACME", quota_memory_gib=str(10**9)))

    assert response.status_code == 200
    hi = QUOTA_MAX["memory_gib"]
    assert f"A quota is a whole number from 0 to {hi}." in visible_text(response)
    assert Tenant.objects.get(pk=tenant.pk).quota_memory_gib is None
