"""``python -m bench.chaos.seed SLUG...``: the people the workload acts as, in the suite's own
database. Prints one JSON line: an API token (read and write, every tenant), a session cookie
for the pages and WebSockets, and the tenants created (one per fault, each owned by the same
user, so every fault's rows, operations and audit entries are its own).

Run as a process of its own with the roles' environment (DATABASE_URL, CACHE_REDIS_URL...), so
the session lands in the session store the web role reads.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta


def main(slugs: list[str]) -> None:
    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from portal.models import ApiToken, Membership, Tenant
    from portal.permissions import Role

    user = get_user_model().objects.create_user(
        username="chaos", email="chaos@example.org", password="chaos-suite-password-2026")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    for slug in slugs:
        tenant = Tenant.objects.create(slug=slug, name=slug)
        Membership.objects.create(tenant=tenant, user=user, role=Role.OWNER)
    secret, token_hash = ApiToken.new_secret()
    ApiToken.objects.create(user=user, name="chaos", scope=ApiToken.Scope.READ_WRITE,
                            token_hash=token_hash, prefix=secret[:10],
                            expires_at=timezone.now() + timedelta(days=1))
    client = Client()
    client.force_login(user)
    print(json.dumps({"token": secret, "session": client.cookies["sessionid"].value,
                      "user_id": user.pk, "tenants": slugs}))


if __name__ == "__main__":
    main(sys.argv[1:])
