"""The create form as one object: rows with stable keys, rule errors placed beside the field
they are about, a spec built even from half-typed input (for the live preview)."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from clusters.web.forms import AddonsForm, SpecForm, next_group_name, row_keys
from cozystack.rules import FieldError
from tests.clusters.ui import offline_platform

# Node-group forms ask which GPU models staff still offer (one cached query).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_platform")]
__all__ = ["offline_platform"]

VERSIONS = ["v1.35", "v1.34"]


def row(key: int, name: str, **fields) -> dict:
    values = {"name": name, "instance_type": "u1.medium", "min_replicas": "1",
              "max_replicas": "3", "disk_gib": "50", "gpu_count": "1", **fields}
    return {f"ng-{key}-{field}": value for field, value in values.items()}


def bound(**data) -> SpecForm:
    data = {"version": "v1.35", "control_plane_replicas": "2", "storage_class": "replicated",
            **data}
    query = QueryDict(mutable=True)
    for key, value in data.items():
        if isinstance(value, list):
            query.setlist(key, value)
        else:
            query[key] = value
    return SpecForm(query, versions=VERSIONS)


def test_an_unbound_form_describes_a_small_working_cluster():
    spec = SpecForm(versions=VERSIONS).to_spec("tenant-acme")

    assert spec.version == "v1.35" and spec.control_plane.replicas == 2
    (group,) = spec.node_groups
    # Offline, forms speak the newest release: v1.6's node disk of 20 GiB.
    assert (group.name, group.instance_type, group.min_replicas, group.max_replicas,
            group.disk_gib, group.roles) == ("md0", "u1.medium", 1, 3, 20,
                                                          ("ingress-nginx",))


def test_rows_keep_their_keys_so_errors_land_on_the_right_row():
    form = bound(name="demo", groups=["3", "7"], **row(3, "md0"), **row(7, "gpu"))
    form.apply_errors([FieldError("node_groups[1].max_replicas", "Too many.", "x"),
                       FieldError("node_groups[0].disk_gib", "Disk.", "x")])

    (k0, first), (k1, second) = form.rows
    assert (k0, k1) == (3, 7)
    assert second.errors["max_replicas"] == ["Too many."]
    assert first.errors["disk_gib"] == ["Disk."]


def test_quota_and_unplaced_errors_go_to_their_panels_never_lost():
    form = bound(name="demo", groups=["0"], **row(0, "md0"))
    assert form.is_valid()
    form.apply_errors([FieldError("quota", "vCPU quota exceeded.", "quota_exceeded"),
                       FieldError("node_groups", "Two groups share a name.", "x"),
                       FieldError("something.new", "A new rule.", "x")])

    assert form.quota_errors == ["vCPU quota exceeded."]
    assert form.group_errors == ["Two groups share a name."]
    assert form.other_errors == ["A new rule."]
    assert form.error_count == 3


def test_add_on_errors_are_placed_on_the_add_on_fields():
    form = bound(name="demo", groups=["0"])
    form.apply_errors([FieldError("addons.ingressNginx.hosts[1]", "Bad host.", "x"),
                       FieldError("addons.certManager.values_override", "Bad root.", "x")])

    assert form.addons.errors["ingressNginx_hosts"] == ["Bad host."]
    assert form.addons.errors["certManager_values"] == ["Bad root."]


def test_half_typed_numbers_keep_their_defaults_in_the_preview():
    form = bound(name="demo", groups=["0"], **{"ng-0-min_replicas": "", "ng-0-max_replicas": "x",
                                              "ng-0-instance_type": "s1.large"})
    spec = form.to_spec("tenant-acme")

    assert not form.is_valid()
    assert spec.node_groups[0].instance_type == "s1.large"
    assert (spec.node_groups[0].min_replicas, spec.node_groups[0].max_replicas) == (1, 3)


def test_a_removed_row_leaves_the_others_and_the_last_row_stays():
    two = QueryDict("groups=0&groups=1&ng-0-name=a&ng-1-name=b")
    assert [k for k, _f in SpecForm(two, versions=VERSIONS, remove_row=0).rows] == [1]
    one = QueryDict("groups=0&ng-0-name=a")
    assert [k for k, _f in SpecForm(one, versions=VERSIONS, remove_row=0).rows] == [0]


def test_row_keys_ignore_junk_and_duplicates():
    assert row_keys(QueryDict("groups=2&groups=x&groups=2&groups=-1&groups=5")) == [2, 5]


def test_new_rows_get_the_next_free_group_name():
    assert next_group_name(["md0", "md1", "gpu"]) == "md2"


def test_yaml_values_are_parsed_and_syntax_errors_say_where():
    good = AddonsForm({"addon-certManager_values": "cert-manager:\n  replicas: 2\n"},
                      prefix="addon")
    assert good.is_valid()
    cert = next(a for a in good.to_addons() if a.key == "certManager")
    assert cert.values_override == {"cert-manager": {"replicas": 2}}

    bad = AddonsForm({"addon-certManager_values": "cert-manager:\n  replicas: [2\n"},
                     prefix="addon")
    assert not bad.is_valid()
    (error,) = bad.errors["certManager_values"]
    assert error.startswith("This is not valid YAML (line ")


def test_ingress_hosts_are_split_on_lines_commas_and_spaces():
    form = AddonsForm({"addon-ingressNginx_enabled": "on",
                       "addon-ingressNginx_hosts": "a.example.com\nb.example.com, c.example.com"},
                      prefix="addon")
    form.is_valid()
    ingress = next(a for a in form.to_addons() if a.key == "ingressNginx")
    assert ingress.enabled and ingress.hosts == ("a.example.com", "b.example.com",
                                                 "c.example.com")


def choice_values(form, name: str) -> list[str]:
    return [value for value, _label in form.fields[name].widget.choices]


def test_node_group_pickers_offer_what_staff_offer_plus_what_the_group_already_has():
    from clusters.models import Offering
    from clusters.web.forms import NodeGroupForm

    gpu = "nvidia.com/H100_94GB"
    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large", hidden=True)
    Offering.objects.create(kind=Offering.Kind.GPU_MODEL, name=gpu, hidden=True)

    new = NodeGroupForm(prefix="add")
    edit = NodeGroupForm(prefix="edit-md0", initial={"instance_type": "u1.large",
                                                      "gpu_model": gpu})
    posted = NodeGroupForm({"edit-md0-instance_type": "u1.large"}, prefix="edit-md0")

    assert "u1.large" not in choice_values(new, "instance_type")
    assert "u1.xlarge" in choice_values(new, "instance_type")
    assert gpu not in choice_values(new, "gpu_model")
    assert "u1.large" in choice_values(edit, "instance_type")
    assert gpu in choice_values(edit, "gpu_model")
    assert "u1.large" in choice_values(posted, "instance_type")


def test_a_hidden_default_instance_type_gives_way_to_the_next_offered_one():
    from clusters.models import Offering

    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.medium", hidden=True)

    (first,) = SpecForm(versions=VERSIONS).to_spec("tenant-acme").node_groups
    query = QueryDict(mutable=True)
    query.update({"version": "v1.35", "name": "demo", "groups": "0", **row(0, "md0")})
    added = SpecForm(query, versions=VERSIONS, add_row=True)

    assert first.instance_type == "u1.large"
    assert added.rows[1][1].value("instance_type") == "u1.large"


# --- auto-repair and access ----------------------------------------------------------------


def _members():
    from clusters.web.queries import AccessMember

    return [AccessMember(1, "ada@example.org", "Ada", "owner", ("admin", "view")),
            AccessMember(2, "bob@example.org", "Bob", "viewer", ("view",)),
            AccessMember(3, "cy@example.org", "Cy", "billing", ())]


def _bound_with_access(**data) -> SpecForm:
    query = QueryDict(mutable=True)
    for key, value in {"version": "v1.35", "groups": "0", **row(0, "md0"), **data}.items():
        query[key] = value
    return SpecForm(query, versions=VERSIONS, access_members=_members())


def test_the_form_builds_auto_repair_and_access_from_what_was_chosen():
    from cozystack.specs import AutoRepairSpec, OidcUserSpec

    form = _bound_with_access(**{"auto_repair": "on", "repair_max_unhealthy": "1",
                                 "repair_node_startup_timeout": "",
                                 "access-m1": "admin", "access-m2": "view"})
    spec = form.to_spec("tenant-acme")
    assert spec.auto_repair == AutoRepairSpec(max_unhealthy="1", node_startup_timeout="10m")
    assert spec.oidc_users == (OidcUserSpec("ada@example.org", "admin"),
                               OidcUserSpec("bob@example.org", "view"))
    assert [m.email for m in form.access.members] == ["ada@example.org", "bob@example.org"]
    assert _bound_with_access(auto_repair="off").to_spec("t").auto_repair == AutoRepairSpec(
        enabled=False)
    assert _bound_with_access().to_spec("t").auto_repair is None


def test_a_role_the_member_may_not_have_is_refused_beside_their_row():
    form = _bound_with_access(**{"access-m2": "admin"})
    assert not form.is_valid()
    assert form.access.errors["m2"]


def test_rule_errors_about_access_and_auto_repair_land_beside_their_fields():
    form = _bound_with_access(**{"access-m1": "view", "access-m2": "view",
                                 "auto_repair": "on"})
    form.to_spec("tenant-acme")
    form.apply_errors([FieldError("oidc_users[1].email", "Bob left.", "not_a_member"),
                       FieldError("auto_repair.node_startup_timeout", "Too short.", "invalid"),
                       FieldError("node_groups[0].storage_class", "No.", "invalid_choice")])
    assert form.access.errors["m2"] == ["Bob left."]
    assert form.cluster.errors["repair_node_startup_timeout"] == ["Too short."]
    assert form.rows[0][1].errors["storage_class"] == ["No."]


def test_the_node_change_form_keeps_the_groups_own_auto_repair_and_kubelet():
    import dataclasses

    from clusters.web.forms import NodeGroupForm
    from cozystack.specs import KubeletSpec
    from tests.clusters.conftest import group

    current = dataclasses.replace(group(), max_unhealthy="1", node_startup_timeout="20m",
                                  kubelet=KubeletSpec(system_reserved_memory="1Gi"))
    posted = QueryDict(mutable=True)
    for key, value in {"name": "md0", "instance_type": "u1.large", "min_replicas": "1",
                       "max_replicas": "3", "disk_gib": "30"}.items():
        posted[f"edit-md0-{key}"] = value
    form = NodeGroupForm(posted, prefix="edit-md0")
    form.is_valid()
    kept = form.to_spec("md0", keep=current)
    assert (kept.max_unhealthy, kept.node_startup_timeout) == ("1", "20m")
    assert kept.kubelet == current.kubelet
    assert kept.instance_type == "u1.large"


def test_the_auto_repair_action_maps_group_errors_to_the_groups_fields():
    from clusters.web.forms import AutoRepairForm
    from tests.clusters.conftest import group

    form = AutoRepairForm(prefix="repair", groups=(group("md0"), group("big")))
    assert form.field_for_error("node_groups[1].max_unhealthy") == "big__max_unhealthy"
    assert form.field_for_error("auto_repair.max_unhealthy") == "repair_max_unhealthy"
    assert form.field_for_error("auto_repair") == "auto_repair"
    assert form.field_for_error("node_groups[0].instance_type") is None
