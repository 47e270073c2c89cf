"""The staff admin for clusters, operations and offerings.

Staff find a cluster (by tenant, name, phase, version), compare what the portal sends with what
the platform has, and fix it: resync, retry or cancel its operation, or take over a deletion
the platform cannot finish. Each action is tried by staff with two-factor authentication (it
works and is audited with their name), staff without it and a signed-in non-staff user (both
refused, nothing changes).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from billing import metering
from billing.models import UsageSegment
from clusters import actions, progress
from clusters.models import Cluster, ClusterEvent, Offering, Operation
from cozystack import dialects
from portal.models import AuditEntry
from tests.clusters.ui import make_cluster, make_operation, offline_platform
from tests.factories import UserFactory
from tests.portal.conftest import give_totp
from tests.portal.pages import visible_text
from tests.staffing import REFUSED, audit

__all__ = ["offline_platform"]


@pytest.fixture
def staff(db):
    user = UserFactory(is_staff=True, is_superuser=True, email="ops@example.org")
    give_totp(user)
    return user


def change_url(cluster: Cluster) -> str:
    return reverse("admin:clusters_cluster_change", args=[cluster.pk])


def staff_url(cluster: Cluster, name: str) -> str:
    return reverse(f"admin:clusters_cluster_{name}", args=[cluster.pk])


def list_action(client, action: str, objects, *, model: str = "cluster", **extra):
    return client.post(reverse(f"admin:clusters_{model}_changelist"), {
        "action": action, "_selected_action": [o.pk for o in objects], **extra}, follow=True)


def stuck_deletion(tenant, *, name: str = "doomed") -> tuple[Cluster, Operation]:
    """A cluster whose deletion the platform accepted and never finished, still billed."""
    cluster = make_cluster(tenant, name, phase=Cluster.Phase.DELETING)
    Cluster.objects.filter(pk=cluster.pk).update(platform_terminating=True)
    cluster.refresh_from_db()
    started = timezone.now() - timedelta(hours=3)
    metering.observe_cluster(cluster, list(cluster.node_groups.all()), started)
    operation = make_operation(cluster, Operation.Kind.DELETE, state=Operation.State.RUNNING,
                               minutes_ago=180, step_states={"submit": progress.DONE,
                                                             "teardown": progress.RUNNING})
    return cluster, operation


# --------------------------------------------------------------------------- finding clusters


@pytest.mark.usefixtures("offline_platform")
class TestFinding:
    def test_staff_search_clusters_by_tenant_name_phase_and_version(
            self, client_for, staff, tenant, other_tenant):
        make_cluster(tenant, "web", version="v1.33")
        make_cluster(tenant, "batch", phase=Cluster.Phase.FAILED)
        make_cluster(other_tenant, "web-globex")
        client = client_for(staff)
        url = reverse("admin:clusters_cluster_changelist")

        def names(**query) -> set[str]:
            response = client.get(url, query)
            assert response.status_code == 200
            return {c.name for c in response.context["cl"].result_list}

        assert names(q="globex") == {"web-globex"}
        assert names(q="batch") == {"batch"}
        assert names(q="failed") == {"batch"}
        assert names(q="v1.33") == {"web"}
        assert names(phase__exact="failed") == {"batch"}
        assert names(version__exact="v1.33") == {"web"}
        assert names(tenant__id__exact=other_tenant.pk) == {"web-globex"}
        assert names(attention="failed") == {"batch"}

    @REFUSED
    def test_the_cluster_pages_are_refused(self, client_for, refused, tenant):
        cluster = make_cluster(tenant)
        client = client_for(refused)
        for url in (reverse("admin:clusters_cluster_changelist"), change_url(cluster),
                    change_url(cluster) + "?observed=1",
                    reverse("admin:clusters_operation_changelist"),
                    reverse("admin:clusters_offering_changelist")):
            response = client.get(url, follow=True)
            assert response.status_code == 403, url
            assert "manifest" not in visible_text(response)


# --------------------------------------------------------------------------- side by side


def test_the_change_page_shows_the_manifest_and_reads_the_platform_only_on_demand(
        client_for, staff, engine):
    cluster = engine.create()
    engine.settle(cluster)
    client = client_for(staff)
    requests_before = len(engine.platform.requests())

    page = client.get(change_url(cluster))

    assert page.status_code == 200
    html = page.content.decode()
    manifest = html[html.index('data-testid="rendered-manifest"'):
                    html.index('data-testid="observed-object"')]
    assert "kind: Kubernetes" in manifest and "name: demo" in manifest
    assert "namespace: tenant-acme" in manifest and "u1.large" in manifest
    assert len(engine.platform.requests()) == requests_before  # nothing read yet
    assert "Read the platform's object now" in visible_text(page)

    page = client.get(change_url(cluster), {"observed": "1"})

    html = page.content.decode()
    observed = html[html.index('data-testid="observed-object"'):]
    assert "apps.cozystack.io/v1alpha1" in observed
    assert "resourceVersion" in observed and "conditions" in observed
    assert "managedFields" not in observed
    assert len(engine.platform.requests()) == requests_before + 1


def test_an_unreachable_platform_is_said_in_words_on_the_change_page(client_for, staff, engine):
    cluster = engine.create()
    engine.settle(cluster)
    engine.platform.set_down(True)

    page = client_for(staff).get(change_url(cluster), {"observed": "1"})

    assert page.status_code == 200
    text = visible_text(page)
    assert "The platform is unreachable" in text
    assert "kind: Kubernetes" in page.content.decode()  # the portal's side still shows


def test_a_cluster_the_platform_does_not_have_is_said_so(client_for, staff, tenant, platform):
    cluster = make_cluster(tenant, "ghost")

    page = client_for(staff).get(change_url(cluster), {"observed": "1"})

    assert "The platform has no object named ghost in tenant-acme." in visible_text(page)


# --------------------------------------------------------------------------- force resync


def test_force_resync_repairs_the_row_from_the_platform_and_is_audited(client_for, staff,
                                                                       engine):
    cluster = engine.create()
    engine.settle(cluster)
    Cluster.objects.filter(pk=cluster.pk).update(platform_ready=False,
                                                 phase=Cluster.Phase.DEGRADED)

    response = client_for(staff).post(staff_url(cluster, "resync"), follow=True)

    assert response.status_code == 200
    cluster.refresh_from_db()
    assert cluster.platform_ready and cluster.phase == Cluster.Phase.RUNNING
    entry, = audit("cluster.resync")
    assert (entry.actor_label, entry.via, entry.tenant_slug) == ("ops@example.org", "admin",
                                                                 "acme")
    assert entry.changes["phase"] == ["degraded", "running"]
    assert "read again from the platform" in visible_text(response)


def test_force_resync_restarts_an_operation_nobody_works_on(client_for, staff, engine):
    cluster = engine.create()
    engine.outbox.clear()  # the worker's message was lost

    with engine.capture(execute=True):
        list_action(client_for(staff), "force_resync", [cluster])

    assert engine.outbox.names() == ["clusters.apply_operation"]
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED
    assert audit("cluster.resync")[0].changes["operation"] == [None, f"{operation.pk} (apply)"]


def test_force_resync_while_the_platform_is_down_says_so_and_records_nothing(
        client_for, staff, engine):
    cluster = engine.create()
    engine.settle(cluster)
    engine.platform.set_down(True)

    response = client_for(staff).post(staff_url(cluster, "resync"), follow=True)

    assert "The platform could not be read" in visible_text(response)
    assert audit("cluster.resync") == []


@REFUSED
def test_force_resync_is_refused(client_for, refused, engine):
    cluster = engine.create()
    engine.settle(cluster)
    Cluster.objects.filter(pk=cluster.pk).update(platform_ready=False)
    client = client_for(refused)

    assert client.post(staff_url(cluster, "resync"), follow=True).status_code == 403
    assert list_action(client, "force_resync", [cluster]).status_code == 403

    cluster.refresh_from_db()
    assert not cluster.platform_ready
    assert audit("cluster.resync") == []


# --------------------------------------------------------------------------- retry and cancel


def failed_upgrade(engine) -> tuple[Cluster, Operation]:
    from cozystack.simulator import Fault

    cluster = engine.create()
    engine.settle(cluster)
    engine.platform.faults.add(Fault(method="PUT", path="kuberneteses", status=422,
                                     message="version refused", times=1))
    engine.act(actions.do_upgrade_cluster, "demo", "v1.35")
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.FAILED
    return cluster, operation


def test_staff_retry_the_failed_operation_of_a_cluster(client_for, staff, engine):
    cluster, failed = failed_upgrade(engine)

    with engine.capture(execute=True):
        response = client_for(staff).post(staff_url(cluster, "retry"), follow=True)

    assert "the last operation runs again" in visible_text(response)
    retry = engine.operation(cluster)
    assert retry.pk != failed.pk and retry.params["retry_of"] == failed.pk
    assert retry.requested_by == staff and retry.requested_via == "admin"
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    cluster.refresh_from_db()
    assert cluster.version == "v1.35"
    entry, = audit("operation.retry")
    assert (entry.actor_label, entry.via, entry.tenant_slug) == ("ops@example.org", "admin",
                                                                 "acme")


def test_staff_retry_from_the_operations_list(client_for, staff, engine):
    cluster, failed = failed_upgrade(engine)

    list_action(client_for(staff), "retry", [failed], model="operation")

    assert engine.operation(cluster).params["retry_of"] == failed.pk
    assert len(audit("operation.retry")) == 1


def test_retrying_an_operation_that_succeeded_is_refused_in_words(client_for, staff, engine):
    cluster = engine.create()
    engine.settle(cluster)

    response = list_action(client_for(staff), "retry_current_operation", [cluster])

    assert "Only a failed or cancelled operation can be retried." in visible_text(response)
    assert audit("operation.retry") == []


@REFUSED
def test_retry_is_refused(client_for, refused, engine):
    cluster, failed = failed_upgrade(engine)
    client = client_for(refused)

    assert client.post(staff_url(cluster, "retry"), follow=True).status_code == 403
    assert list_action(client, "retry_current_operation", [cluster]).status_code == 403
    assert list_action(client, "retry", [failed], model="operation").status_code == 403

    assert engine.operation(cluster).pk == failed.pk
    assert audit("operation.retry") == []


def test_staff_cancel_an_operation_the_platform_has_not_received(client_for, staff, engine):
    cluster = engine.create()
    engine.settle(cluster)
    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=2, max_replicas=5)
    queued = engine.operation(cluster)

    response = client_for(staff).post(staff_url(cluster, "cancel"), follow=True)

    assert "the operation in progress was cancelled" in visible_text(response)
    queued.refresh_from_db()
    assert queued.state == Operation.State.CANCELLED
    assert queued.error_message == "Cancelled by ops@example.org."
    assert cluster.node_groups.get(name="md0").max_replicas == 3  # the request is undone
    entry, = audit("operation.cancel")
    assert (entry.actor_label, entry.via) == ("ops@example.org", "admin")


def test_an_operation_the_platform_already_has_cannot_be_cancelled(client_for, staff, engine):
    cluster = engine.create()
    engine.outbox.run()  # sent
    operation = engine.operation(cluster)

    response = list_action(client_for(staff), "cancel", [operation], model="operation")

    assert "can no longer be cancelled" in visible_text(response)
    operation.refresh_from_db()
    assert operation.is_active


@REFUSED
def test_cancel_is_refused(client_for, refused, engine):
    cluster = engine.create()
    operation = engine.operation(cluster)
    client = client_for(refused)

    assert client.post(staff_url(cluster, "cancel"), follow=True).status_code == 403
    assert list_action(client, "cancel_current_operation", [cluster]).status_code == 403
    assert list_action(client, "cancel", [operation], model="operation").status_code == 403

    operation.refresh_from_db()
    assert operation.state == Operation.State.QUEUED
    assert audit("operation.cancel") == []


def test_staff_cannot_change_the_clusters_of_a_suspended_tenant(client_for, staff, engine):
    from portal.actions import do_suspend_tenant
    from portal.audit import Actor

    cluster, failed = failed_upgrade(engine)
    do_suspend_tenant(Actor(user=staff), cluster.tenant, reason="Unpaid invoices")

    response = client_for(staff).post(staff_url(cluster, "retry"), follow=True)

    assert "This tenant is suspended: Unpaid invoices" in visible_text(response)
    assert engine.operation(cluster).pk == failed.pk


# --------------------------------------------------------------------------- manual cleanup


@pytest.mark.usefixtures("offline_platform")
def test_a_stuck_deletion_is_taken_over_for_manual_cleanup(client_for, staff, tenant):
    cluster, operation = stuck_deletion(tenant)
    assert UsageSegment.objects.filter(cluster=cluster, end__isnull=True).exists()

    response = client_for(staff).post(staff_url(cluster, "cleanup"),
                                      {"note": "Volumes stuck; ticket OPS-12, Ana removes them"},
                                      follow=True)

    assert "marked deleted; clean up what is left on the platform" in visible_text(response)
    cluster.refresh_from_db()
    operation.refresh_from_db()
    assert cluster.is_deleted and cluster.phase == Cluster.Phase.DELETED
    assert cluster.platform_deleted_at is not None
    assert "OPS-12" in cluster.status_message
    assert operation.state == Operation.State.FAILED
    assert operation.error_message == ("Marked for manual cleanup by ops@example.org: Volumes "
                                       "stuck; ticket OPS-12, Ana removes them")
    assert not cluster.node_groups.filter(removed_at__isnull=True).exists()
    segments = UsageSegment.objects.filter(cluster=cluster)
    assert segments.exists() and not segments.filter(end__isnull=True).exists()
    assert {s.end for s in segments} == {cluster.platform_deleted_at.replace(microsecond=0)}
    event = ClusterEvent.objects.get(cluster=cluster, reason="manual_cleanup")
    assert event.actor_label == "ops@example.org"
    entry, = audit("cluster.manual_cleanup")
    assert (entry.actor_label, entry.via, entry.tenant_slug) == ("ops@example.org", "admin",
                                                                 "acme")
    assert entry.changes["note"][1].startswith("Volumes stuck")
    # Staff find it again later, and the tenant may reuse the name.
    listed = client_for(staff).get(reverse("admin:clusters_cluster_changelist"),
                                   {"attention": "manual"})
    assert [c.pk for c in listed.context["cl"].result_list] == [cluster.pk]
    assert make_cluster(tenant, "doomed").pk != cluster.pk


def test_manual_cleanup_of_a_deletion_the_platform_never_received(client_for, staff, engine):
    cluster = engine.create()
    engine.settle(cluster)
    engine.act(actions.do_delete_cluster, "demo", confirm="demo")
    engine.platform.set_down(True)
    engine.outbox.run()  # the DELETE cannot be sent: a retry waits
    operation = engine.operation(cluster)
    assert operation.is_active and operation.submitted_at is None

    list_action(client_for(staff), "mark_for_manual_cleanup", [cluster],
                note="Platform lost; delete tenant-acme/demo by hand")

    cluster.refresh_from_db()
    operation.refresh_from_db()
    assert cluster.is_deleted
    assert operation.state == Operation.State.FAILED
    assert not UsageSegment.objects.filter(cluster=cluster, end__isnull=True).exists()
    engine.outbox.run()  # the pending retry finds nothing to do
    operation.refresh_from_db()
    assert operation.state == Operation.State.FAILED
    assert len(audit("cluster.manual_cleanup")) == 1


@pytest.mark.usefixtures("offline_platform")
def test_manual_cleanup_needs_a_note_and_a_deletion_in_progress(client_for, staff, tenant):
    cluster, _operation = stuck_deletion(tenant)
    running = make_cluster(tenant, "healthy")
    client = client_for(staff)

    no_note = client.post(staff_url(cluster, "cleanup"), {"note": ""}, follow=True)
    not_deleting = list_action(client, "mark_for_manual_cleanup", [running], note="oops")

    assert "Say what is left to clean up and who does it." in visible_text(no_note)
    assert "Only a cluster whose deletion was requested" in visible_text(not_deleting)
    cluster.refresh_from_db()
    running.refresh_from_db()
    assert not cluster.is_deleted and not running.is_deleted
    assert audit("cluster.manual_cleanup") == []


@pytest.mark.usefixtures("offline_platform")
def test_a_manual_cleanup_note_with_a_bidi_override_is_refused(client_for, staff, tenant):
    # The note reaches the tenant's timeline: it must display as written.
    cluster, _operation = stuck_deletion(tenant)

    response = client_for(staff).post(staff_url(cluster, "cleanup"),
                                      {"note": "Volumes \u202eremoved"}, follow=True)

    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in visible_text(response)
    cluster.refresh_from_db()
    assert not cluster.is_deleted and audit("cluster.manual_cleanup") == []


@pytest.mark.usefixtures("offline_platform")
def test_the_cleanup_button_shows_only_for_a_stuck_deletion(client_for, staff, tenant):
    cluster, _operation = stuck_deletion(tenant)
    running = make_cluster(tenant, "healthy")
    client = client_for(staff)

    assert 'data-testid="manual-cleanup"' in client.get(change_url(cluster)).content.decode()
    assert 'data-testid="manual-cleanup"' not in client.get(change_url(running)).content.decode()


@REFUSED
@pytest.mark.usefixtures("offline_platform")
def test_manual_cleanup_is_refused(client_for, refused, tenant):
    cluster, operation = stuck_deletion(tenant)
    client = client_for(refused)

    response = client.post(staff_url(cluster, "cleanup"), {"note": "x"}, follow=True)
    assert response.status_code == 403
    assert list_action(client, "mark_for_manual_cleanup", [cluster],
                       note="x").status_code == 403

    cluster.refresh_from_db()
    assert not cluster.is_deleted
    assert UsageSegment.objects.filter(cluster=cluster, end__isnull=True).exists()
    assert audit("cluster.manual_cleanup") == []


@pytest.mark.usefixtures("offline_platform")
def test_staff_who_may_only_look_are_offered_no_action(client_for, tenant):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    give_totp(viewer)
    viewer.user_permissions.add(Permission.objects.get(codename="view_cluster"))
    cluster, _operation = stuck_deletion(tenant)
    client = client_for(viewer)

    page = client.get(change_url(cluster))
    assert page.status_code == 200
    assert 'data-testid="manual-cleanup"' not in page.content.decode()
    assert client.post(staff_url(cluster, "cleanup"), {"note": "x"}).status_code == 403
    list_action(client, "mark_for_manual_cleanup", [cluster], note="x")
    cluster.refresh_from_db()
    assert not cluster.is_deleted


# --------------------------------------------------------------------------- operations list


@pytest.mark.usefixtures("offline_platform")
def test_operations_filter_by_age_failure_error_class_and_kind(client_for, staff, tenant):
    def op(name, minutes, **kwargs):
        return make_operation(make_cluster(tenant, name), minutes_ago=minutes, **kwargs)

    queued_5 = op("a", 5, kind=Operation.Kind.SCALE, state=Operation.State.QUEUED,
                  submitted=False)
    running_45 = op("b", 45, kind=Operation.Kind.UPGRADE, state=Operation.State.RUNNING)
    running_300 = op("c", 300, kind=Operation.Kind.DELETE, state=Operation.State.RUNNING)
    failed_old = op("d", 500, kind=Operation.Kind.CREATE, state=Operation.State.FAILED,
                    error_class=Operation.ErrorClass.TIMEOUT, error_message="stuck")
    failed_spec = op("e", 20, kind=Operation.Kind.UPGRADE, state=Operation.State.FAILED,
                     error_class=Operation.ErrorClass.INVALID_SPEC, error_message="no")
    client = client_for(staff)

    def ids(**query) -> set[int]:
        response = client.get(reverse("admin:clusters_operation_changelist"), query)
        assert response.status_code == 200
        return {o.pk for o in response.context["cl"].result_list}

    assert ids(running_longer_than="10") == {running_45.pk, running_300.pk}
    assert ids(running_longer_than="30") == {running_45.pk, running_300.pk}
    assert ids(running_longer_than="60") == {running_300.pk}
    assert ids(running_longer_than="240") == {running_300.pk}
    assert ids(state__exact="failed") == {failed_old.pk, failed_spec.pk}
    assert ids(error_class__exact="invalid_spec") == {failed_spec.pk}
    assert ids(kind__exact="upgrade") == {running_45.pk, failed_spec.pk}
    assert ids(kind__exact="scale", running_longer_than="10") == set()
    assert queued_5.pk in ids()
    page = client.get(reverse("admin:clusters_operation_changelist"))
    assert "240 minutes" in visible_text(page)


# --------------------------------------------------------------------------- offerings


def offering_list(client, rows: list[Offering], **changes) -> object:
    """Post the list page's editable columns, changing ``changes[name]`` of those rows."""
    data = {"form-TOTAL_FORMS": str(len(rows)), "form-INITIAL_FORMS": str(len(rows)),
            "_save": "Save"}
    for i, row in enumerate(rows):
        values = {"hidden": row.hidden, "end_of_life_on": row.end_of_life_on or "",
                  **changes.get(row.name, {})}
        data[f"form-{i}-id"] = str(row.pk)
        if values["hidden"]:
            data[f"form-{i}-hidden"] = "on"
        data[f"form-{i}-end_of_life_on"] = str(values["end_of_life_on"] or "")
    return client.post(reverse("admin:clusters_offering_changelist"), data, follow=True)


@pytest.mark.usefixtures("offline_platform")
def test_staff_hide_an_instance_type_and_retire_a_version_from_the_list(client_for, staff):
    client = client_for(staff)
    client.post(reverse("admin:clusters_offering_add_catalogue"))
    rows = list(Offering.objects.order_by("kind", "name"))
    assert {(r.kind, r.name) for r in rows} >= {("instance_type", "u1.large"),
                                                ("version", "v1.33")}
    assert not any(r.hidden or r.end_of_life_on for r in rows)
    assert audit("offering.import")[0].actor_label == "ops@example.org"

    response = offering_list(client, rows, **{
        "u1.large": {"hidden": True}, "v1.33": {"end_of_life_on": "2026-01-31"}})

    assert response.status_code == 200, response.content[:2000]
    from clusters.offerings import end_of_life_versions, offered_instance_types

    assert "u1.large" not in {t.name for t in offered_instance_types()}
    assert "u1.large" in {t.name for t in offered_instance_types(keep={"u1.large"})}
    assert set(end_of_life_versions(date(2026, 2, 1))) == {"v1.33"}
    changed = {e.object_repr: e.changes for e in audit("offering.update")}
    assert changed["Instance type u1.large"] == {"hidden": [False, True]}
    assert changed["Kubernetes version v1.33"] == {"end_of_life_on": [None, "2026-01-31"]}
    assert {e.actor_label for e in audit("offering.update")} == {"ops@example.org"}


@pytest.mark.usefixtures("offline_platform")
def test_an_offering_names_an_item_of_the_catalogue(client_for, staff):
    client = client_for(staff)
    add = reverse("admin:clusters_offering_add")

    form = client.get(add).content.decode()
    for name in ("u1.large", "v1.33", dialects.v13().catalogue.gpu_models[0].name):
        assert f'value="{name}"' in form

    made_up = client.post(add, {"kind": "instance_type", "name": "z9.huge"})
    wrong_kind = client.post(add, {"kind": "gpu_model", "name": "v1.33"})
    eol_on_type = client.post(add, {"kind": "instance_type", "name": "u1.large",
                                    "end_of_life_on": "2026-01-01"})
    good = client.post(add, {"kind": "version", "name": "v1.33",
                             "end_of_life_on": "2026-01-01", "note": "Security fixes ended."})

    assert made_up.status_code == wrong_kind.status_code == eol_on_type.status_code == 200
    assert "v1.33 is not a gpu model of the catalogue." in visible_text(wrong_kind)
    assert "Only Kubernetes versions have an end of life." in visible_text(eol_on_type)
    assert good.status_code == 302
    assert list(Offering.objects.values_list("kind", "name")) == [("version", "v1.33")]
    entry, = audit("offering.create")
    assert entry.changes["end_of_life_on"] == [None, "2026-01-01"]


@REFUSED
@pytest.mark.usefixtures("offline_platform")
def test_offerings_cannot_be_changed(client_for, refused):
    client = client_for(refused)

    client.post(reverse("admin:clusters_offering_add_catalogue"))
    client.post(reverse("admin:clusters_offering_add"), {"kind": "version", "name": "v1.33",
                                                          "hidden": "on"})

    assert not Offering.objects.exists()


@pytest.mark.usefixtures("offline_platform")
def test_staff_remove_an_offering_row_and_it_is_audited(client_for, staff):
    row = Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.33", hidden=True,
                                  note="Withdrawn")

    response = client_for(staff).post(reverse("admin:clusters_offering_delete", args=[row.pk]),
                                      {"post": "yes"})

    assert response.status_code == 302
    assert not Offering.objects.exists()
    entry, = audit("offering.delete")
    assert (entry.actor_label, entry.via, entry.ip) == ("ops@example.org", "admin", "127.0.0.1")
    assert entry.changes["hidden"] == [True, None]
    assert entry.changes["note"] == ["Withdrawn", None]


def test_a_bulk_removal_of_offerings_reaches_the_pickers_at_once(
        client_for, staff, django_capture_on_commit_callbacks):
    from clusters.offerings import hidden_offerings

    with django_capture_on_commit_callbacks(execute=True):
        row = Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large",
                                      hidden=True)
    assert "u1.large" in hidden_offerings()[Offering.Kind.INSTANCE_TYPE]  # cached now

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(staff).post(reverse("admin:clusters_offering_changelist"), {
            "action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})

    assert response.status_code == 302 and not Offering.objects.exists()
    assert "u1.large" not in hidden_offerings()[Offering.Kind.INSTANCE_TYPE]


@REFUSED
@pytest.mark.usefixtures("offline_platform")
def test_offerings_cannot_be_hidden_from_the_list_or_removed(client_for, refused):
    row = Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large")
    client = client_for(refused)

    offering_list(client, [row], **{"u1.large": {"hidden": True}})
    client.post(reverse("admin:clusters_offering_delete", args=[row.pk]), {"post": "yes"})

    row.refresh_from_db()
    assert not row.hidden
    assert not AuditEntry.objects.exists()


# --------------------------------------------------------------------------- the tenant warning


@pytest.mark.usefixtures("offline_platform")
def test_a_cluster_on_an_end_of_life_version_shows_the_warning_and_the_upgrade(db):
    Offering.objects.create(kind="version", name="v1.33", end_of_life_on=date(2020, 1, 1),
                            note="Plan the upgrade this month.")
    template = Template("{% load offering_tags %}"
                        "{% for v in versions %}{% eol_warning v '/upgrade/' %}{% endfor %}"
                        "|{{ 'v1.33'|version_warning }}|{{ 'v1.34'|version_warning }}")

    html = template.render(Context({"versions": ["v1.33", "v1.34", "v1.33"]}))

    warnings = visible_text(html).split("|")[0].strip()
    expected = ("End of life: Kubernetes v1.33 reached its end of life on 2020-01-01. Upgrade "
                "to v1.34. Plan the upgrade this month. Upgrade now")
    assert warnings == f"{expected} {expected}"
    assert html.count('data-testid="eol-warning"') == 2
    assert 'href="/upgrade/"' in html
    assert html.split("|")[1].startswith("Kubernetes v1.33 reached its end of life")
    assert html.split("|")[2] == ""


@pytest.mark.usefixtures("offline_platform")
def test_a_version_whose_end_of_life_is_in_the_future_shows_no_warning_yet(db):
    Offering.objects.create(kind="version", name="v1.33",
                            end_of_life_on=timezone.now().date() + timedelta(days=1))

    html = Template("{% load offering_tags %}{% eol_warning 'v1.33' %}").render(Context({}))

    assert html.strip() == ""


@pytest.mark.usefixtures("offline_platform")
def test_the_warning_costs_one_query_for_a_whole_list(db, django_assert_num_queries):
    Offering.objects.create(kind="version", name="v1.33", end_of_life_on=date(2020, 1, 1))
    template = Template("{% load offering_tags %}"
                        "{% for v in versions %}{% eol_warning v %}{% endfor %}")

    with django_assert_num_queries(1):  # every dated version, read once and cached
        template.render(Context({"versions": ["v1.33"] * 20 + ["v1.34"] * 20}))
    with django_assert_num_queries(0):
        html = template.render(Context({"versions": ["v1.33", "v1.34"]}))
    assert html.count('data-testid="eol-warning"') == 1


# --------------------------------------------------------------------------- hidden offerings


@pytest.mark.usefixtures("offline_platform")
def test_hidden_items_are_refused_for_new_uses_only(db):
    import dataclasses

    from clusters.offerings import check_offered
    from tests.clusters.conftest import cluster_spec, group

    gpu = "nvidia.com/H100_94GB"
    for kind, name in (("instance_type", "u1.large"), ("version", "v1.33"),
                       ("gpu_model", gpu)):
        Offering.objects.create(kind=kind, name=name, hidden=True)
    running = cluster_spec("web", version="v1.33",
                           groups=(group("md0", instance_type="u1.large"),))
    new = cluster_spec("new", version="v1.33", groups=(
        group("md0", instance_type="u1.large"),
        group("ml", instance_type="u1.2xlarge", gpus=(gpu,), roles=())))

    errors = {(e.field, e.code): e.message for e in check_offered(new)}

    assert errors == {
        ("version", "not_offered"): "Kubernetes v1.33 is no longer offered; choose another "
                                    "version.",
        ("node_groups[0].instance_type", "not_offered"): "The instance type u1.large is no "
                                                         "longer offered; choose another one.",
        ("node_groups[1].gpus", "not_offered"): f"The GPU model {gpu} is no longer offered; "
                                                "choose another one.",
    }
    # What a cluster already runs keeps working; a new group may not take the hidden type.
    scaled = dataclasses.replace(running, node_groups=(
        dataclasses.replace(running.node_groups[0], max_replicas=5),))
    assert check_offered(scaled, previous=running) == []
    grown = dataclasses.replace(running, node_groups=(
        *running.node_groups, group("md1", instance_type="u1.large", roles=())))
    assert [e.field for e in check_offered(grown, previous=running)] == [
        "node_groups[1].instance_type"]
    Offering.objects.update(hidden=False)
    assert check_offered(new) == []
