"""A budget is an amount and a few thresholds within ``limits``: the budget page, the staff
admin and the action refuse the same values, beside the field, and store nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from billing import actions
from billing.models import Budget, validate_thresholds
from cozystack import limits
from portal.audit import Actor
from portal.tenancy import access_tenant
from tests.portal.pages import field_errors

pytestmark = pytest.mark.django_db

TOO_MANY = [str(v) for v in range(1, limits.BUDGET_THRESHOLDS + 2)]


def budget_url(tenant) -> str:
    return reverse("billing:budget", kwargs={"tenant_slug": tenant.slug})


@pytest.mark.parametrize(("field", "value"), [
    ("amount", "1e30"), ("amount", str(limits.BUDGET_CHF.hi + 1)), ("amount", "NaN"),
    ("amount", "Infinity"), ("thresholds", ", ".join(TOO_MANY)),
    ("thresholds", str(limits.BUDGET_THRESHOLD_PERCENT.hi + 1)), ("thresholds", "1" * 5000),
])
def test_the_budget_page_refuses_values_outside_the_limits_beside_the_field(
        client_for, owner, tenant, field, value):
    data = {"amount": "100", "thresholds": "50, 80", field: value}
    response = client_for(owner).post(budget_url(tenant), data, HTTP_HX_REQUEST="true")

    assert response.status_code == 422
    assert field_errors(response, field)
    assert not Budget.objects.exists()


def test_the_budget_page_takes_the_highest_amount(client_for, owner, tenant):
    response = client_for(owner).post(budget_url(tenant), {
        "amount": str(limits.BUDGET_CHF.hi), "thresholds": ", ".join(TOO_MANY[:-1])})

    assert response.status_code == 302
    assert Budget.objects.get().amount == limits.BUDGET_CHF.hi


@pytest.mark.parametrize("amount", [Decimal("1e30"), Decimal("NaN"), Decimal("Infinity"),
                                    limits.BUDGET_CHF.hi + 1])
def test_the_budget_action_refuses_an_amount_outside_the_limits(tenant, owner, amount):
    with pytest.raises(ValidationError) as refused:
        actions.do_set_budget(Actor(user=owner), access_tenant(owner, tenant.slug),
                              amount=amount)

    assert "amount" in refused.value.message_dict
    assert not Budget.objects.exists()


def test_the_budget_action_refuses_too_many_thresholds(tenant, owner):
    with pytest.raises(ValidationError) as refused:
        actions.do_set_budget(Actor(user=owner), access_tenant(owner, tenant.slug),
                              amount=Decimal("100"), thresholds=[int(v) for v in TOO_MANY])

    assert "thresholds" in refused.value.message_dict


@pytest.mark.parametrize("value", [[int(v) for v in TOO_MANY], [True], [1001], []])
def test_stored_thresholds_are_checked_against_the_same_limits(value):
    with pytest.raises(ValidationError):
        validate_thresholds(value)
