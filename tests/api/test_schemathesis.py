"""Schemathesis against the live OpenAPI document: every operation, a bounded number of
generated requests each, no 5xx and no answer that disagrees with the document.

The document is loaded from the running application (``/api/schema/``) and requests go
through the real WSGI stack in this process, inside each test's database transaction, with a
token of the tenant's owner and the tenant's objects in the URL (random slugs would only ever
find the 404 path). The management cluster is the simulated one.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing.models import Invoice
from billing.periods import Period
from clusters.cluster_templates import reusable
from clusters.models import Cluster, ClusterTemplate, Operation
from cozystack.gateway import reset_gateway
from cozystack.specjson import spec_to_json
from tests.api.factories import make_cluster, make_operation, make_token
from tests.test_url_isolation import _sample_delivery

# `make test` runs a bounded sweep; API_FUZZ_DEEP=1 adds the exhaustive coverage phase and
# more generated requests (minutes, for a thorough look before a release).
DEEP = os.environ.get("API_FUZZ_DEEP") == "1"
MAX_EXAMPLES = 40 if DEEP else 5
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


class _InTransactionWSGIHandler(WSGIHandler):
    """Django's WSGI handler without closing the connection at the end of each request, so the
    requests run inside the test's transaction (as Django's own test client does)."""

    def __call__(self, environ, start_response):
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        try:
            return super().__call__(environ, start_response)
        finally:
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)


APP = _InTransactionWSGIHandler()
# Bounded: examples from the document and a few generated requests per operation; the
# exhaustive coverage phase would take minutes.
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": DEEP}}})
schema = schemathesis.openapi.from_wsgi("/api/schema/", APP, config=CONFIG)


@dataclass
class World:
    headers: dict[str, str]
    path: dict[str, object]


@pytest.fixture(scope="module")
def platform():
    """One simulated management cluster for the module (starting one per test costs more
    than the requests); nothing here changes it except the kubeconfig reads."""
    from django.test.utils import override_settings

    from cozystack.simulator import ManualClock, SimulatedPlatform
    from tests.fixtures.simulator import UPSTREAM_SCHEMA

    simulated = SimulatedPlatform(schema_path=UPSTREAM_SCHEMA, clock=ManualClock()).start()
    with tempfile.TemporaryDirectory() as tmp:
        path = simulated.kubeconfig(Path(tmp) / "kubeconfig")
        with override_settings(PLATFORM_KUBECONFIG=str(path)):
            reset_gateway()
            yield simulated
    simulated.stop()
    reset_gateway()
    assert not simulated.server_errors, simulated.server_errors


@pytest.fixture
def world(tenant, owner, platform) -> World:
    cluster = make_cluster(tenant, "prod-eu", groups=2)
    failed = make_operation(cluster, kind=Operation.Kind.SCALE, state=Operation.State.FAILED)
    period = Period.current().previous
    invoice = Invoice.objects.create(
        tenant=tenant, status=Invoice.Status.FINALIZED, period_start=period.start,
        period_end=period.end, number="T-0001", tenant_name=tenant.name,
        subtotal=Decimal("10.00"), vat_rate=Decimal("0.0810"), vat_amount=Decimal("0.81"),
        total=Decimal("10.81"), issued_at=period.end_at)
    delivery = _sample_delivery(SimpleNamespace(tenant=tenant, extra={}))
    template = ClusterTemplate.objects.create(tenant=tenant, name="small",
                                              spec=spec_to_json(reusable(cluster.to_spec())))
    gone = make_cluster(tenant, "gone")
    Cluster.objects.filter(pk=gone.pk).update(deleted_at=timezone.now(),
                                              phase=Cluster.Phase.DELETED)
    return World(headers={"Authorization": f"Bearer {make_token(owner)}"},
                 path={"tenant_slug": tenant.slug, "cluster_name": cluster.name,
                       "group_name": "md1", "operation_id": failed.pk,
                       "invoice_id": invoice.pk, "webhook_id": delivery.endpoint_id,
                       "delivery_id": delivery.pk, "template_id": template.pk,
                       "cluster_id": gone.pk})


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, world):
    for name in case.path_parameters or {}:
        if name in world.path:
            case.path_parameters[name] = world.path[name]
    response = case.call(headers=world.headers)
    case.validate_response(response, checks=CHECKS, headers=world.headers)
