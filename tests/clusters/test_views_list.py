"""The clusters list: phase, version, nodes, last change and the error line under a failing
row; filters; a constant number of queries however many clusters there are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import Cluster, Operation
from clusters.web import broadcast, live
from tests.clusters.ui import (
    by_testid,
    make_cluster,
    make_event,
    make_operation,
    offline_platform,
    text_of,
    url,
)

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]


def rows(response) -> dict[str, str]:
    html = response.content.decode()
    found = {}
    for cluster in Cluster.objects.all():
        if f'id="cluster-{cluster.pk}"' in html:
            found[cluster.name] = text_of(html, f"cluster-{cluster.pk}").replace("\xa0", " ")
    return found


def test_the_list_shows_phase_version_nodes_and_last_change(client_for, viewer, tenant):
    web = make_cluster(tenant, "web", groups=[{"name": "md0", "observed_nodes": 3,
                                               "ready_nodes": 2, "min_replicas": 2,
                                               "max_replicas": 5}])
    event = make_event(web, "md0: 3 nodes, 2 ready.", minutes_ago=3)
    make_cluster(tenant, "api", phase=Cluster.Phase.CREATING, version="v1.33")

    page = client_for(viewer).get(url("list", tenant))

    assert page.status_code == 200
    shown = rows(page)
    assert list(shown) == ["api", "web"]
    assert "Running" in shown["web"] and "v1.34" in shown["web"]
    assert "2 of 3" in shown["web"] and "2–5" in shown["web"]
    # The last change is the newest event; the browser words it relative to now.
    assert f'<time datetime="{event.at.isoformat()}" data-relative' in page.content.decode()
    assert f"{event.at:%b %d, %H:%M} UTC" in shown["web"]
    assert "Creating" in shown["api"] and "v1.33" in shown["api"]


def test_a_failing_row_carries_its_error_line(client_for, viewer, tenant):
    broken = make_cluster(tenant, "broken", phase=Cluster.Phase.FAILED,
                          last_error="Specified instancetype not exists in cluster: x1.huge")
    make_operation(broken, state=Operation.State.FAILED, error_class="invalid_spec",
                   error_message="Specified instancetype not exists in cluster: x1.huge")
    make_cluster(tenant, "fine")

    page = client_for(viewer).get(url("list", tenant))

    errors = by_testid(page, "row-error")
    assert len(errors) == 1
    assert errors[0].startswith("Instance type not offered by the platform · You need to act")


def test_filters_by_phase_and_version(client_for, viewer, tenant):
    make_cluster(tenant, "a", version="v1.34")
    make_cluster(tenant, "b", version="v1.33")
    make_cluster(tenant, "c", phase=Cluster.Phase.FAILED, version="v1.33")
    client = client_for(viewer)

    assert set(rows(client.get(url("list", tenant), {"version": "v1.33"}))) == {"b", "c"}
    assert set(rows(client.get(url("list", tenant), {"phase": "failed"}))) == {"c"}
    assert set(rows(client.get(url("list", tenant), {"phase": "running",
                                                     "version": "v1.33"}))) == {"b"}
    empty = client.get(url("list", tenant), {"phase": "deleting"})
    assert "No cluster matches these filters." in empty.content.decode()


def test_a_filter_change_answers_only_the_live_region_for_htmx(client_for, viewer, tenant):
    make_cluster(tenant, "a")
    response = client_for(viewer).get(url("list", tenant), {"phase": "running"},
                                      headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="cluster-live"')
    assert "phase=running" in html  # the socket follows the filter
    assert "<html" not in html


def test_deleted_clusters_and_other_tenants_clusters_are_not_listed(client_for, viewer, tenant,
                                                                   other_tenant):
    from django.utils import timezone

    gone = make_cluster(tenant, "gone")
    gone.deleted_at = timezone.now()
    gone.phase = Cluster.Phase.DELETED
    gone.save()
    make_cluster(other_tenant, "theirs")
    make_cluster(tenant, "mine")

    assert set(rows(client_for(viewer).get(url("list", tenant)))) == {"mine"}


def test_the_list_costs_the_same_number_of_queries_for_5_or_40_clusters(client_for, viewer,
                                                                        tenant):
    client = client_for(viewer)
    for i in range(5):
        cluster = make_cluster(tenant, f"c{i:02d}", groups=[{"name": "md0"}, {"name": "md1"}])
        make_operation(cluster)
        make_event(cluster, "hello")
    client.get(url("list", tenant))  # warm up the session and caches
    live.forget_list(tenant.pk)  # as a change would: the next page renders its region anew
    with CaptureQueriesContext(connection) as few:
        assert client.get(url("list", tenant)).status_code == 200
    for i in range(5, 40):
        cluster = make_cluster(tenant, f"c{i:02d}", groups=[{"name": "md0"}, {"name": "md1"}])
        make_operation(cluster, state=Operation.State.FAILED, error_class="timeout")
        make_event(cluster, "hello")
    live.forget_list(tenant.pk)
    with CaptureQueriesContext(connection) as many:
        page = client.get(url("list", tenant))
    assert len(rows(page)) == 40
    assert len(many.captured_queries) == len(few.captured_queries), [
        q["sql"][:120] for q in many.captured_queries]


def test_the_polling_fallback_returns_the_rows_out_of_band(client_for, viewer, tenant):
    make_cluster(tenant, "a")
    response = client_for(viewer).get(url("list_live", tenant))
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="cluster-list" class="card" hx-swap-oob="true">')
    assert "a" in rows(response)


def test_the_list_page_opens_one_websocket(client_for, viewer, tenant):
    html = client_for(viewer).get(url("list", tenant)).content.decode()
    assert html.count("ws-connect=") == 1
    assert 'ws-connect="/ws/t/acme/clusters/?lang=en&amp;phase=&amp;version=&amp;page=1"' in html


def test_a_viewer_sees_no_new_cluster_button_a_member_does(client_for, viewer, member, tenant):
    assert 'data-testid="new-cluster"' not in client_for(viewer).get(
        url("list", tenant)).content.decode()
    assert 'data-testid="new-cluster"' in client_for(member).get(
        url("list", tenant)).content.decode()


def test_the_tenant_home_has_a_clusters_card_and_the_nav_a_clusters_link(client_for, member,
                                                                         tenant):
    from django.urls import reverse

    make_cluster(tenant, "a")
    make_cluster(tenant, "b", phase=Cluster.Phase.FAILED)
    page = client_for(member).get(reverse("tenant_home", kwargs={"tenant_slug": tenant.slug}))
    card = " ".join(by_testid(page, "clusters-card"))
    assert card.startswith("Clusters 2 1 running · 0 changing · 1 need attention")
    assert f'href="{url("list", tenant)}"' in page.content.decode()


def test_billing_users_get_no_clusters_link_or_card(client_for, billing_user, tenant):
    from django.urls import reverse

    page = client_for(billing_user).get(reverse("tenant_home",
                                                kwargs={"tenant_slug": tenant.slug}))
    assert f'href="{url("list", tenant)}"' not in page.content.decode()
    assert not by_testid(page, "clusters-card")


def test_an_outsider_gets_not_found(client_for, outsider, tenant):
    assert client_for(outsider).get(url("list", tenant)).status_code == 404
    assert client_for(outsider).get(url("list_live", tenant)).status_code == 404


def test_rows_served_from_the_row_cache_never_show_an_old_state(client_for, viewer, tenant):
    from clusters.models import NodeGroup

    cluster = make_cluster(tenant, "a")
    client = client_for(viewer)
    assert "2 of 2" in rows(client.get(url("list", tenant)))["a"]

    # Every writer announces its change once committed (``broadcast``), as here.
    NodeGroup.objects.filter(cluster=cluster).update(observed_nodes=3, ready_nodes=1)
    broadcast.cluster_changed(cluster.pk)
    assert "1 of 3" in rows(client.get(url("list", tenant)))["a"]

    cluster.phase, cluster.status_message = Cluster.Phase.DEGRADED, "Degraded: 1 of 3 ready."
    cluster.save()
    broadcast.cluster_changed(cluster.pk)
    assert "Degraded: 1 of 3 ready." in rows(client.get(url("list", tenant)))["a"]


def test_rows_on_an_end_of_life_version_carry_a_marker(client_for, viewer, tenant):
    import datetime

    from clusters.models import Offering

    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.33",
                            end_of_life_on=datetime.date(2020, 1, 1))
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.34",
                            end_of_life_on=timezone.now().date() + datetime.timedelta(days=30))
    make_cluster(tenant, "old", version="v1.33")
    make_cluster(tenant, "soon", version="v1.34")
    make_cluster(tenant, "new", version="v1.35")

    page = client_for(viewer).get(url("list", tenant))

    shown = rows(page)
    assert "End of life" in shown["old"]
    assert "End of life" not in shown["soon"] and "End of life" not in shown["new"]
    assert by_testid(page, "eol-marker") == ["End of life"]
    assert 'title="Kubernetes v1.33 reached its end of life on 2020-01-01."' in \
        page.content.decode()


def test_a_cached_row_and_page_get_the_marker_as_soon_as_its_version_reaches_end_of_life(
        client_for, viewer, tenant, django_capture_on_commit_callbacks):
    import datetime

    from clusters import offerings
    from clusters.models import Offering

    make_cluster(tenant, "a", version="v1.33")
    client = client_for(viewer)
    assert "End of life" not in rows(client.get(url("list", tenant)))["a"]

    with django_capture_on_commit_callbacks(execute=True):
        offerings.do_save_offering(Offering(kind=Offering.Kind.VERSION, name="v1.33",
                                            end_of_life_on=datetime.date(2020, 1, 1)))

    assert "End of life" in rows(client.get(url("list", tenant)))["a"]
    assert "End of life" in rows(client.get(url("list_live", tenant)))["a"]


def test_a_stalled_operation_explains_itself_in_its_row(client_for, viewer, tenant):
    from clusters import progress

    cluster = make_cluster(tenant, "slow", phase=Cluster.Phase.UPDATING)
    operation = make_operation(cluster, Operation.Kind.SCALE, state=Operation.State.RUNNING,
                               submitted=False)
    operation.steps = progress.set_step(operation.steps, "submit", progress.RUNNING,
                                        "The platform is unreachable; retrying.")
    operation.save()

    errors = by_testid(client_for(viewer).get(url("list", tenant)), "row-error")

    assert len(errors) == 1 and errors[0].startswith("Platform incident")
    assert "(The platform is unreachable; retrying.)" in errors[0]


def test_a_cached_row_shows_its_operation_failing_and_its_groups_changing(client_for, viewer,
                                                                          tenant):
    from clusters.models import NodeGroup

    cluster = make_cluster(tenant, "a", groups=[{"name": "md0"}, {"name": "md1"}])
    operation = make_operation(cluster, Operation.Kind.SCALE, state=Operation.State.RUNNING)
    client = client_for(viewer)
    assert "4 of 4" in rows(client.get(url("list", tenant)))["a"]
    assert not by_testid(client.get(url("list", tenant)), "row-error")

    Operation.objects.filter(pk=operation.pk).update(
        state=Operation.State.FAILED, error_class="timeout", error_message="Took too long.")
    NodeGroup.objects.filter(cluster=cluster, name="md1").update(removed_at=timezone.now())
    broadcast.cluster_changed(cluster.pk)

    page = client.get(url("list", tenant))
    assert "2 of 2" in rows(page)["a"] and "1–3" in rows(page)["a"]
    assert len(by_testid(page, "row-error")) == 1


def test_the_list_reads_the_memberships_once_and_offerings_from_the_cache(client_for, viewer,
                                                                          tenant):
    make_cluster(tenant, "a")
    client = client_for(viewer)
    client.get(url("list", tenant))

    with CaptureQueriesContext(connection) as captured:
        page = client.get(url("list", tenant))

    tables = [q["sql"].split(" FROM ", 1)[1].split()[0] for q in captured.captured_queries
              if " FROM " in q["sql"]]
    assert tables.count('"portal_membership"') == 1
    assert '"clusters_offering"' not in tables and '"portal_announcement"' not in tables
    assert "ACME" in " ".join(by_testid(page, "tenant-switcher"))


def test_a_page_served_from_the_cache_reads_no_cluster_and_follows_each_change(
        client_for, viewer, tenant):
    cluster = make_cluster(tenant, "a")
    client = client_for(viewer)
    assert "Running" in rows(client.get(url("list", tenant)))["a"]

    with CaptureQueriesContext(connection) as captured:
        page = client.get(url("list", tenant))
    assert "Running" in rows(page)["a"]
    tables = [q["sql"].split(" FROM ", 1)[1].split()[0] for q in captured.captured_queries
              if " FROM " in q["sql"]]
    assert not [t for t in tables if t.startswith('"clusters_') or t.startswith('"billing_')]

    Cluster.objects.filter(pk=cluster.pk).update(phase=Cluster.Phase.FAILED,
                                                  last_error="Helm install failed")
    broadcast.cluster_changed(cluster.pk)
    assert "Failed" in rows(client.get(url("list", tenant)))["a"]
    # So does the region an htmx filter change asks for.
    region = client.get(url("list", tenant), {"phase": "failed"}, headers={"HX-Request": "true"})
    assert region.content.decode().lstrip().startswith("<div id=\"cluster-live\"")
    assert "Helm install failed" in region.content.decode()


def test_cached_regions_are_kept_apart_by_role_language_and_filters(
        client_for, viewer, member, tenant):
    make_cluster(tenant, "a", phase=Cluster.Phase.FAILED)
    as_viewer, as_member = client_for(viewer), client_for(member)
    create = url("create", tenant)

    assert create not in as_viewer.get(url("list", tenant), {"phase": "running"}).content.decode()
    assert create in as_member.get(url("list", tenant), {"phase": "running"}).content.decode()
    # The empty-state link to create one is inside the cached region: never shown to a viewer.
    empty = as_viewer.get(url("list", tenant), {"phase": "running"}).content.decode()
    assert "No cluster matches these filters." in empty and create not in empty

    assert set(rows(as_viewer.get(url("list", tenant), {"phase": "failed"}))) == {"a"}
    assert rows(as_viewer.get(url("list", tenant), {"phase": "running"})) == {}

    french = as_viewer.get(url("list", tenant), headers={"Accept-Language": "fr"})
    assert "Ce mois-ci" in french.content.decode()
    english = as_viewer.get(url("list", tenant), headers={"Accept-Language": "en"})
    assert "This month" in english.content.decode()

