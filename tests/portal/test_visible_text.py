"""Names shown to other people refuse bidi controls, invisible format characters and control
characters, whichever way they arrive: the model field (so the admin), the pages and the
actions say the same sentence beside the field."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from billing.models import Invoice, Price, Sku, VatRate
from clusters.models import Offering
from portal import actions
from portal.audit import Actor
from portal.models import Announcement, ApiToken, AuditEntry, Tenant
from portal.validators import refused_characters, validate_visible_text
from tests.portal.pages import field_errors, visible_text
from tests.portal.test_admin_audit import resubmit

pytestmark = pytest.mark.django_db

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "Acme\u202egnp.exe" displays as "Acmeexe.png"
BIDI_CONTROLS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
                 "\u2068", "\u2069", "\u200e", "\u200f", "\u061c"]
OTHER_INVISIBLE = ["\x00", "\x07", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\u200b",
                   "\u2060", "\ufeff", "\u2028", "\u2029", "\u00ad", "\U000e0041", "\ud800",
                   "\ufffe", "\U0010ffff"]
FINE = ["ACME", "Zürich Ops", "Ñandú & Cie", "株式会社", "مرحبا بالعالم", "שלום",
        "می\u200cخواهم", "👩\u200d💻 team", "Ops — 24/7", "O'Brien (R&D)"]


@pytest.mark.parametrize("char", BIDI_CONTROLS + OTHER_INVISIBLE,
                         ids=lambda c: f"U+{ord(c):04X}")
def test_each_invisible_or_control_character_is_refused(char):
    with pytest.raises(ValidationError) as error:
        validate_visible_text(f"Acme{char}Corp")
    assert error.value.code == "invisible_character"
    assert f"U+{ord(char):04X}" in error.value.messages[0]


@pytest.mark.parametrize("text", FINE)
def test_names_in_any_script_with_joiners_accents_and_emoji_pass(text):
    validate_visible_text(text)
    assert refused_characters(text) == []


def test_the_message_names_each_character_once():
    with pytest.raises(ValidationError) as error:
        validate_visible_text(f"a{RLO}b{RLO}c\x00")
    assert error.value.messages == [
        "Remove U+202E RIGHT-TO-LEFT OVERRIDE, U+0000 control character: invisible and "
        "control characters can make a name display differently from what it says."]


def _offering() -> Offering:
    return Offering(kind=Offering.Kind.VERSION, name="v1.34")


NAMED_FIELDS = [
    (lambda: Tenant(slug="acme"), "name"),
    (lambda: Tenant(slug="acme", name="ACME"), "suspension_reason"),
    (lambda: ApiToken(), "name"),
    (lambda: Announcement(), "message"),
    (lambda: Sku(code="node.u1.medium"), "description"),
    (lambda: Price(), "note"),
    (lambda: VatRate(), "note"),
    (lambda: Invoice(), "reason"),
    (_offering, "note"),
]


@pytest.mark.parametrize(("make", "field"), NAMED_FIELDS,
                         ids=[f"{m().__class__.__name__}.{f}" for m, f in NAMED_FIELDS])
def test_every_free_text_name_refuses_them_at_the_model(make, field):
    instance = make()
    setattr(instance, field, f"Maintenance{RLO}gnp.exe")
    others = [f.name for f in instance._meta.fields if f.name != field]

    with pytest.raises(ValidationError) as error:
        instance.clean_fields(exclude=others)

    assert "U+202E" in error.value.message_dict[field][0]


# --------------------------------------------------------------------------- tenants


def test_a_tenant_cannot_be_created_with_a_bidi_override(client_for, user):
    response = client_for(user).post(reverse("tenant_create"),
                                     {"name": f"Acme{RLO}gnp.exe", "slug": "acme"})

    assert response.status_code == 422
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in field_errors(response, "name")[0]
    assert not Tenant.objects.exists() and not AuditEntry.objects.exists()


def test_a_tenant_cannot_be_renamed_with_a_bidi_override(client_for, owner, tenant):
    url = reverse("tenant_settings", kwargs={"tenant_slug": tenant.slug})

    response = client_for(owner).post(url, {"name": f"ACME{RLO}"})

    assert response.status_code == 422
    assert "U+202E" in field_errors(response, "name")[0]
    tenant.refresh_from_db()
    assert tenant.name == "ACME"


def test_staff_cannot_give_a_tenant_a_bidi_name_in_the_admin(client_for, staff_with_mfa,
                                                             tenant):
    url = reverse("admin:portal_tenant_change", args=[tenant.pk])

    response = resubmit(client_for(staff_with_mfa), url, name=f"ACME{RLO}")

    assert response.status_code == 200
    assert "U+202E" in visible_text(response)
    tenant.refresh_from_db()
    assert tenant.name == "ACME"


def test_a_suspension_reason_with_a_control_character_is_refused(tenant, staff_with_mfa):
    with pytest.raises(ValidationError) as error:
        actions.do_suspend_tenant(Actor(user=staff_with_mfa, via="admin"), tenant,
                                  reason="unpaid\x1b[2J invoices")

    assert "U+001B" in error.value.message_dict["suspension_reason"][0]
    tenant.refresh_from_db()
    assert not tenant.is_suspended and not AuditEntry.objects.exists()


def test_staff_cannot_announce_a_bidi_message(client_for, staff_with_mfa):
    response = client_for(staff_with_mfa).post(reverse("admin:portal_announcement_add"), {
        "message": f"Maintenance{RLO}", "level": "info",
        "starts_at_0": timezone.now().strftime("%Y-%m-%d"), "starts_at_1": "00:00:00"})

    assert response.status_code == 200
    assert "U+202E" in visible_text(response)
    assert not Announcement.objects.exists()


# --------------------------------------------------------------------------- people and tokens


def test_a_profile_name_with_a_bidi_override_is_refused_beside_the_field(client_for, user):
    response = client_for(user).post(reverse("profile"),
                                     {"first_name": f"Ada{RLO}", "last_name": "Love\u2066lace"})

    assert response.status_code == 422
    assert "U+202E" in field_errors(response, "first_name")[0]
    assert "U+2066" in field_errors(response, "last_name")[0]
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("", "")
    assert not AuditEntry.objects.exists()


def test_the_profile_action_refuses_them_too(user):
    with pytest.raises(ValidationError) as error:
        actions.do_update_profile(Actor(user=user), first_name="Ada", last_name="\x00")

    assert list(error.value.message_dict) == ["last_name"]
    user.refresh_from_db()
    assert user.last_name == ""


def test_a_token_name_with_a_bidi_override_is_refused_beside_the_field(client_for, owner):
    response = client_for(owner).post("/account/api-tokens/", {
        "name": f"CI{RLO}", "scope": "read", "expires_in_days": "30", "tenant": ""})

    assert response.status_code == 422
    assert "U+202E" in field_errors(response, "name")[0]
    assert not ApiToken.objects.exists() and not AuditEntry.objects.exists()

