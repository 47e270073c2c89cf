"""Budget alerts: one email and one in-app notice per tenant, threshold and month.

The email goes to the owners and billing members who did not turn it off; webhooks hear of it
through ``BudgetThresholdReached``, published in the transaction that records the alert.

The ``BudgetAlert`` row is the proof a threshold was crossed this month; its unique
(tenant, month, threshold) constraint is what makes "once" hold when two checks run at the same
time: only the transaction that inserts the row sends the email, after it commits.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import rating
from billing.events import BudgetThresholdReached
from billing.models import Budget, BudgetAlert
from billing.periods import Period
from billing.queries import tenant_costs
from portal import events, languages, notifications
from portal.models import Membership
from portal.permissions import Role

logger = logging.getLogger("billing.budgets")

BILLING_CONTACT_ROLES = (Role.OWNER, Role.BILLING)


def billing_contacts(tenant_id: int, event_type: str | None = None) -> list[str]:
    """Email addresses of the tenant's owners and billing members; with ``event_type``, only
    those who did not turn its email off (``portal.notifications``)."""
    if event_type is not None:
        return notifications.recipient_emails(tenant_id, event_type)
    return sorted(set(Membership.objects.filter(
        tenant_id=tenant_id, role__in=BILLING_CONTACT_ROLES,
    ).exclude(user__email="").values_list("user__email", flat=True)))


def crossed(spent: Decimal, budget_amount: Decimal, threshold: int) -> bool:
    return spent * 100 >= budget_amount * threshold


def check_budgets(*, now: datetime | None = None,
                  tenant_ids: list[int] | None = None) -> list[BudgetAlert]:
    """Raise the alerts of every threshold crossed this month and not alerted yet.

    Returns the alerts created by this call. Safe to repeat and to run concurrently: a
    threshold already alerted this month is skipped, and a race is settled by the unique
    constraint (the loser creates nothing and sends nothing).
    """
    now = now or timezone.now()
    period = Period.current(now)
    budgets = list(Budget.objects.select_related("tenant").filter(
        **({"tenant_id__in": tenant_ids} if tenant_ids is not None else {})))
    if not budgets:
        return []
    ids = [b.tenant_id for b in budgets]
    costs = tenant_costs(period, as_of=now, tenant_ids=ids)
    done = set(BudgetAlert.objects.filter(period_start=period.start, tenant_id__in=ids)
               .values_list("tenant_id", "threshold"))
    created = []
    for budget in budgets:
        spent = costs.get(budget.tenant_id, rating.ZERO)
        for threshold in sorted(set(budget.thresholds or [])):
            if not crossed(spent, budget.amount, threshold):
                break
            if (budget.tenant_id, threshold) in done:
                continue
            alert = _raise_alert(budget, period, threshold, spent, now)
            if alert is not None:
                created.append(alert)
    return created


def _raise_alert(budget: Budget, period: Period, threshold: int, spent: Decimal,
                 now: datetime) -> BudgetAlert | None:
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                tenant_id=budget.tenant_id, period_start=period.start, threshold=threshold,
                budget_amount=budget.amount, spent=spent, created_at=now)
            alert_id = alert.pk
            alert.tenant = budget.tenant
            events.publish(BudgetThresholdReached(alert))
            transaction.on_commit(lambda: send_budget_alert(alert_id))
    except IntegrityError:
        return None
    logger.info("billing.budget.crossed", extra={"tenant_id": budget.tenant_id,
                                                 "threshold": threshold, "spent": str(spent)})
    return alert


def send_budget_alert(alert_id: int) -> None:
    """Email one alert to the tenant's owners and billing members (after the alert commits),
    each in their language."""
    alert = BudgetAlert.objects.select_related("tenant").filter(pk=alert_id).first()
    if alert is None or alert.emailed_to:
        return
    recipients = billing_contacts(alert.tenant_id, notifications.EventType.BUDGET_THRESHOLD)
    if not recipients:
        return
    url = settings.SITE_URL.rstrip("/") + reverse("billing:usage",
                                                  kwargs={"tenant_slug": alert.tenant.slug})
    context = {"alert": alert, "tenant": alert.tenant, "url": url,
               "month": Period(alert.period_start).key,
               "preferences_url": notifications.preferences_url()}

    def send(group: list[str]) -> None:
        subject = _("%(tenant)s: %(threshold)s %% of the monthly budget reached") % {
            "tenant": alert.tenant.name, "threshold": alert.threshold}
        send_mail(subject=subject,
                  message=render_to_string("billing/email/budget_alert.txt", context),
                  from_email=None, recipient_list=group)

    languages.in_each_language(recipients, alert.tenant, send)
    BudgetAlert.objects.filter(pk=alert.pk).update(emailed_to=", ".join(recipients))
