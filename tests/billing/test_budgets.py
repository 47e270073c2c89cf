"""Budgets: one email and one notice per threshold and month, whatever the concurrency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError

from billing import actions, budgets
from billing.models import Budget, BudgetAlert
from portal.audit import Actor
from portal.tenancy import access_tenant
from tests.billing.conftest import T0, make_rig
from tests.billing.test_invoices import _in_threads
from tests.factories import MembershipFactory, TenantFactory


def _budget(tenant, amount: str, thresholds=None) -> Budget:
    return Budget.objects.create(tenant=tenant, amount=Decimal(amount),
                                 thresholds=thresholds or [50, 80, 100])


def _spend(tenant, name="web"):
    """1 node from T0: CHF 0.36 per hour."""
    rig = make_rig(tenant, name)
    rig.observe(T0, md0=1)
    return rig


def check(hours: float, **kwargs):
    return budgets.check_budgets(now=T0 + timedelta(hours=hours), **kwargs)


def test_each_threshold_alerts_once_a_month(tenant, price_book, owner, billing_user, member,
                                            django_capture_on_commit_callbacks):
    _budget(tenant, "36.00")  # 100 h of one node
    _spend(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        assert check(49) == []                               # 17.64 = 49 %
        assert [a.threshold for a in check(50)] == [50]      # 18.00 = 50 %
        assert check(51) == []
        assert [a.threshold for a in check(120)] == [80, 100]  # 43.20 = 120 %
        assert check(121) == []
    assert [m.subject for m in mail.outbox] == [
        "ACME: 50 % of the monthly budget reached", "ACME: 80 % of the monthly budget reached",
        "ACME: 100 % of the monthly budget reached"]
    assert all(sorted(m.to) == sorted([owner.email, billing_user.email]) for m in mail.outbox)
    alert = BudgetAlert.objects.get(threshold=50)
    assert (alert.spent, alert.budget_amount) == (Decimal("18.00"), Decimal("36.00"))
    assert alert.emailed_to


def test_a_new_month_starts_again(tenant, price_book, owner, django_capture_on_commit_callbacks):
    _budget(tenant, "10.00", [50])
    _spend(tenant)
    check(20)
    april = datetime(2026, 4, 1, 20, tzinfo=UTC)  # 20 h of April: 7.20 = 72 %
    with django_capture_on_commit_callbacks(execute=True):
        assert [a.period_start.month for a in budgets.check_budgets(now=april)] == [4]
    assert BudgetAlert.objects.count() == 2


def test_tenants_without_budget_or_usage_get_nothing(tenant, price_book):
    _spend(tenant)
    other = TenantFactory()
    _budget(other, "1.00")
    assert check(500) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_alert_and_email_once(price_book):
    tenant = TenantFactory()
    MembershipFactory(tenant=tenant, role="owner")
    _budget(tenant, "1.00")
    _spend(tenant)
    mail.outbox = []
    results = _in_threads(6, lambda i: len(check(10)))  # 3.60 = 360 %: every threshold
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 3
    assert BudgetAlert.objects.count() == 3
    assert len(mail.outbox) == 3


def test_setting_a_budget_is_for_owner_admin_and_billing(tenant, owner, billing_user, viewer,
                                                         member):
    billing_ctx = access_tenant(billing_user, tenant.slug)
    budget = actions.do_set_budget(Actor(user=billing_user), billing_ctx,
                                   amount=Decimal("250"))
    assert (budget.amount, budget.thresholds) == (Decimal("250.00"), [50, 80, 100])
    for user in (viewer, member):
        with pytest.raises(PermissionDenied):
            actions.do_set_budget(Actor(user=user), access_tenant(user, tenant.slug),
                                  amount=Decimal("1"))
    with pytest.raises(ValidationError):
        actions.do_set_budget(Actor(user=owner), access_tenant(owner, tenant.slug),
                              amount=Decimal("0"))
    with pytest.raises(ValidationError):
        actions.do_set_budget(Actor(user=owner), access_tenant(owner, tenant.slug),
                              amount=Decimal("5"), thresholds=[0, 50])
    actions.do_remove_budget(Actor(user=owner), access_tenant(owner, tenant.slug))
    assert not Budget.objects.exists()
