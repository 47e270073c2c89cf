"""The add-on values boxes of the create page and the detail page read YAML through the one
values loader: an alias bomb, deep nesting, a huge or non-finite number is an error beside the
box, quickly, and nothing is stored or sent; the manifest preview never expands anything."""

from __future__ import annotations

import pytest

from clusters.models import Cluster, Operation
from tests.clusters.test_views_create import form_data
from tests.clusters.ui import field_errors, make_cluster, offline_platform, text_of, url
from tests.platform.test_values import bomb

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]

BOX = "addon-certManager_values"
HTMX = {"HX-Request": "true"}
HOSTILE = {
    "alias-bomb-7": bomb(7, "cert-manager"),
    "alias-bomb-4": bomb(4, "cert-manager"),
    "nested-sequences": "cert-manager: " + "[" * 600 + "]" * 600,
    "nested-mappings": "cert-manager: " + "{a: " * 600 + "1" + "}" * 600,
    "int-5000-digits": "cert-manager:\n  replicas: " + "9" * 5000,
    "int-beyond-64-bits": f"cert-manager:\n  replicas: {2**64}",
    "inf": "cert-manager:\n  ratio: .inf",
    "nan": "cert-manager:\n  ratio: .nan",
    "nul": 'cert-manager:\n  name: "a\\0b"',
    "too-large": "cert-manager:\n  blob: " + "a" * 70_000,
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_checking_refuses_the_document_beside_the_box_and_previews_nothing_of_it(
        client_for, member, tenant, text):
    response = client_for(member).post(url("create_check", tenant), form_data(
        **{"addon-certManager_enabled": "on", BOX: text}), headers=HTMX)

    assert response.status_code == 200
    assert field_errors(response, BOX)
    assert "lol" not in text_of(response.content, "manifest-preview")
    assert len(response.content) < 300_000


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_submitting_refuses_the_document_and_creates_nothing(client_for, member, tenant, text):
    response = client_for(member).post(url("create", tenant), form_data(
        **{"addon-certManager_enabled": "on", BOX: text}))

    assert response.status_code == 422
    assert field_errors(response, BOX)
    assert not Cluster.objects.exists() and not Operation.objects.exists()


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_add_on_form_of_a_cluster_refuses_the_document(client_for, owner, tenant, text):
    cluster = make_cluster(tenant)
    response = client_for(owner).post(url("addons", tenant, cluster_name="demo"), {
        "addon-certManager_enabled": "on", BOX: text, "addons-confirm": "True"}, headers=HTMX)

    assert response.status_code == 422
    assert field_errors(response, BOX)
    assert not cluster.operations.exists()


def test_the_alias_message_says_where_and_what_to_do(client_for, member, tenant):
    response = client_for(member).post(url("create_check", tenant),
                                       form_data(**{BOX: "cert-manager:\n  a: &x 1\n"}),
                                       headers=HTMX)

    assert field_errors(response, BOX) == [
        "Anchors and aliases (& and *) are not allowed in custom values (line 2, column 6); "
        "write each value out."]


def test_plain_values_still_reach_the_preview(client_for, member, tenant):
    response = client_for(member).post(url("create_check", tenant), form_data(
        **{"addon-certManager_enabled": "on", BOX: "cert-manager:\n  replicaCount: 2\n"}),
        headers=HTMX)

    assert field_errors(response, BOX) == []
    assert "replicaCount: 2" in text_of(response.content, "manifest-preview")
