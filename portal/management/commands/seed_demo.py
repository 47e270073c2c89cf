"""``manage.py seed_demo``: a demo tenant with a demo owner, so a newcomer can sign in at once.

Safe to repeat: existing rows are left exactly as they are (a changed demo password stays
changed). It refuses to run with DEBUG off unless ``--force``, since it creates an account
whose password is printed here and written in the README.
"""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from allauth.utils import generate_unique_username
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from portal.actions import do_create_tenant
from portal.audit import Actor
from portal.models import AuditEntry, Membership, Tenant
from portal.permissions import Role

DEMO_SLUG = "demo"
DEMO_NAME = "Demo"
DEMO_EMAIL = "demo@example.org"
DEMO_PASSWORD = "demo-portal-2026"


class Command(BaseCommand):
    help = "Create the demo tenant and its owner (idempotent) and print how to sign in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true",
                            help="Run even with DEBUG off (never on a production portal).")

    def handle(self, *args: Any, force: bool = False, **options: Any) -> None:
        if not settings.DEBUG and not force:
            raise CommandError("seed_demo creates an account with a published password; "
                               "it runs only with DEBUG=true (or --force).")
        with transaction.atomic():
            owner, created_user = self._demo_owner()
            tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
            created_tenant = tenant is None
            if tenant is None:
                tenant = do_create_tenant(Actor(user=owner, via=AuditEntry.Via.SYSTEM),
                                          slug=DEMO_SLUG, name=DEMO_NAME)
            elif not Membership.objects.filter(tenant=tenant, user=owner).exists():
                self.stderr.write(f"Tenant {DEMO_SLUG!r} exists without {DEMO_EMAIL}; "
                                  "left as it is.")
        done = [what for what, new in (("user", created_user), ("tenant", created_tenant)) if new]
        self.stdout.write(f"Demo {' and '.join(done)} created." if done
                          else "Demo data already present; nothing changed.")
        self.stdout.write(f"Portal: {settings.SITE_URL}")
        self.stdout.write(f"Sign in as {DEMO_EMAIL} with password {DEMO_PASSWORD} "
                          f"({Role.OWNER.label} of tenant {DEMO_SLUG!r}).")

    def _demo_owner(self) -> tuple[Any, bool]:
        user_model = get_user_model()
        address = EmailAddress.objects.filter(email__iexact=DEMO_EMAIL).select_related("user")
        existing = address.first()
        if existing is not None:
            return existing.user, False
        user = user_model.objects.filter(email__iexact=DEMO_EMAIL).first()
        created = user is None
        if user is None:
            user = user_model(username=generate_unique_username(["demo"]), email=DEMO_EMAIL)
            user.set_password(DEMO_PASSWORD)
            user.save()
        EmailAddress.objects.create(user=user, email=DEMO_EMAIL, verified=True, primary=True)
        return user, created
