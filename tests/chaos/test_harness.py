"""The chaos suite's workload and invariant checks (bench/chaos), on the processes the test
session already runs (uvicorn, a Celery worker, the watcher, the simulated platform): a short
fault-free pass finds no violation and no failed request, and the checks do see a platform
that no longer matches the rows. The faults themselves run in `make chaos`, not here.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from bench.chaos import checks
from bench.chaos.roles import now
from bench.chaos.workload import Recorder, Workload, is_failure, summary
from clusters.models import Cluster, NodeGroup
from portal.models import AuditEntry
from portal.permissions import Role
from tests.api.factories import make_token
from tests.factories import MembershipFactory, TenantFactory
from tests.fixtures.processes import _database_url, eventually

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def harness(live_platform, asgi_server, celery_worker_proc, watcher_proc):
    tenant = TenantFactory(slug=f"chaos{uuid.uuid4().hex[:8]}")
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER).user
    db = checks.Database(_database_url(connection.settings_dict))
    platform = checks.Platform(live_platform.url, live_platform.token)
    return tenant, make_token(owner, name="chaos"), db, platform


def test_a_fault_free_pass_breaks_no_invariant_and_fails_no_request(harness, asgi_server):
    tenant, token, db, platform = harness
    recorder = Recorder()
    workload = Workload(asgi_server, token, tenant.slug, recorder, clusters=2, deletes=1,
                        stagger=0.2, request_deadline=30, operation_deadline=90).start()
    assert workload.join(now() + 150), "the workload did not finish"

    assert workload.gave_up() == [] and workload.refused() == []
    assert workload.outcomes == {"create succeeded": 2, "scale succeeded": 2,
                                 "delete succeeded": 1}
    answers = summary(recorder.answers)
    assert not [outcome for outcome in answers if is_failure(outcome)], answers
    assert [i.kind for i in workload.intents].count("create") == 2
    slug = tenant.slug
    assert checks.stuck(db, slug, "test") == []
    assert checks.lost_intent(db, slug, workload.intents) == []
    assert checks.duplicates(db, platform, slug, platform.requests()) == []
    assert checks.audit(db, slug) == []
    eventually(lambda: checks.settled(db, platform, slug) == [], timeout=30,
               message=f"rows or usage did not settle: {checks.settled(db, platform, slug)}")


def test_the_checks_see_a_platform_changed_behind_the_portals_back(harness, asgi_server,
                                                                    live_platform):
    tenant, token, db, platform = harness
    recorder = Recorder()
    workload = Workload(asgi_server, token, tenant.slug, recorder, clusters=1, deletes=0,
                        stagger=0, request_deadline=30, operation_deadline=90).start()
    assert workload.join(now() + 120) and workload.outcomes["scale succeeded"] == 1
    eventually(lambda: checks.settled(db, platform, tenant.slug) == [], timeout=30)

    # A row that no longer says what the platform runs.
    cluster = Cluster.objects.get(tenant=tenant, name="c0")
    NodeGroup.objects.filter(cluster=cluster).update(max_replicas=9)
    found = checks.rows_match_platform(db, platform, tenant.slug)
    assert any("limits 2–9 in the portal, 2–3 on the platform" in v for v in found), found

    # A change recorded twice in the audit log.
    AuditEntry.objects.create(actor_label="chaos", via="api", tenant=tenant,
                              tenant_slug=tenant.slug, verb="cluster.scale",
                              object_type="cluster", object_id=str(cluster.pk))
    assert checks.audit(db, tenant.slug) == ["audit: 2 × cluster.scale for c0, 1 operation(s)"]

    # An intent the portal accepted but has no operation for is a lost intent.
    lost = checks.lost_intent(db, tenant.slug, [checks.Intent("scale", "c0", "k", 10**9)])
    assert lost and lost[0].startswith("lost intent")
