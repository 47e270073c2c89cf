"""Four languages: the switcher offers them, a signed-in person's choice is kept on their profile
(and follows them to every session), the browser decides before sign-in, and emails go out in
the recipient's language whatever the sender's."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from portal import languages
from portal.models import AuditEntry, Tenant, UserProfile
from portal.permissions import Role
from tests.factories import MembershipFactory, UserFactory
from tests.portal.pages import visible_text


def _lang(response) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.content.decode())
    assert match, response.content.decode()[:500]
    return match.group(1)


def _home(tenant) -> str:
    return reverse("tenant_home", kwargs={"tenant_slug": tenant.slug})


def _switcher_options(response) -> list[str]:
    html = response.content.decode()
    form = html[html.index('data-testid="language-switcher"'):]
    form = form[:form.index("</form>")]
    return re.findall(r'<option value="([^"]+)"', form)


# -- the switcher --------------------------------------------------------------------------------

def test_the_switcher_offers_four_languages(client, db):
    page = client.get(reverse("account_login"))
    assert _switcher_options(page) == ["en", "fr", "de", "it"]


def test_the_switcher_shows_the_chosen_language_selected(client_for, owner, tenant):
    client = client_for(owner)
    client.post(reverse("set_language"), {"language": "it", "next": _home(tenant)})
    html = client.get(_home(tenant)).content.decode()
    assert '<option value="it" selected>' in html


# -- before sign-in: the browser -----------------------------------------------------------------

@pytest.mark.parametrize(("accept", "lang", "words"), [
    ("de-CH,de;q=0.9,en;q=0.5", "de", "Kubernetes-Portal"),
    ("it-CH,it;q=0.9", "it", "Portale Kubernetes"),
    ("fr-CH,fr;q=0.9", "fr", "Portail Kubernetes"),
    ("en-GB,en;q=0.9", "en", "Kubernetes portal"),
])
def test_accept_language_decides_before_sign_in(client, db, accept, lang, words):
    page = client.get(reverse("account_login"), HTTP_ACCEPT_LANGUAGE=accept)

    assert page.status_code == 200
    assert _lang(page) == lang
    assert words in visible_text(page)


def test_a_signed_in_person_who_chose_nothing_follows_the_browser(client_for, owner, tenant):
    page = client_for(owner).get(_home(tenant), HTTP_ACCEPT_LANGUAGE="de-CH,de;q=0.9")
    assert _lang(page) == "de"
    assert "Ihre Rolle: Eigentümer" in visible_text(page)


# -- signed in: the profile ----------------------------------------------------------------------

def test_the_switcher_stores_a_signed_in_persons_choice_on_their_profile(
        client_for, owner, tenant):
    client = client_for(owner)

    response = client.post(reverse("set_language"), {"language": "de", "next": _home(tenant)})

    assert response.status_code == 302 and response["Location"] == _home(tenant)
    assert UserProfile.objects.get(user=owner).language == "de"
    assert "Ihre Rolle: Eigentümer" in visible_text(client.get(_home(tenant)))


def test_the_choice_follows_the_person_to_a_new_session(client_for, owner, tenant):
    client_for(owner).post(reverse("set_language"), {"language": "it", "next": "/"})

    # Another browser: no language cookie, a browser that asks for English.
    elsewhere = client_for(owner)
    page = elsewhere.get(_home(tenant), HTTP_ACCEPT_LANGUAGE="en")

    assert _lang(page) == "it"
    assert "Il Suo ruolo: Proprietario" in visible_text(page)


def test_the_profile_wins_over_the_browser_and_the_cookie(client_for, owner, tenant):
    languages.set_user_language(owner, "de")
    client = client_for(owner)
    client.cookies["django_language"] = "fr"

    page = client.get(_home(tenant), HTTP_ACCEPT_LANGUAGE="it")

    assert _lang(page) == "de"


def test_signing_out_hands_the_language_back_to_the_browser(client_for, owner, tenant):
    languages.set_user_language(owner, "de")
    client = client_for(owner)
    assert _lang(client.get(_home(tenant))) == "de"

    client.post(reverse("account_logout"))
    page = client.get(reverse("account_login"), HTTP_ACCEPT_LANGUAGE="it")

    assert _lang(page) == "it"


def test_an_unknown_language_changes_nothing(client_for, owner, tenant):
    client = client_for(owner)
    response = client.post(reverse("set_language"), {"language": "xx", "next": "/"})
    assert response.status_code == 302
    assert not UserProfile.objects.filter(user=owner).exclude(language="").exists()


def test_the_profile_page_sets_and_clears_the_language(client_for, owner, tenant):
    client = client_for(owner)
    url = reverse("profile")

    client.post(url, {"first_name": "Ada", "last_name": "L", "language": "de"})
    assert languages.user_language(owner) == "de"
    assert _lang(client.get(url, HTTP_ACCEPT_LANGUAGE="fr")) == "de"

    client.post(url, {"first_name": "Ada", "last_name": "L", "language": ""})
    assert languages.user_language(owner) == ""
    assert _lang(client.get(url, HTTP_ACCEPT_LANGUAGE="fr")) == "fr"
    entry = AuditEntry.objects.filter(verb="profile.update").latest("pk")
    assert entry.changes["language"] == ["de", ""]


def test_the_profile_page_refuses_an_unknown_language(client_for, owner):
    response = client_for(owner).post(reverse("profile"), {"first_name": "", "last_name": "",
                                                           "language": "tlh"})
    assert response.status_code == 422
    assert languages.user_language(owner) == ""


# -- emails in the recipient's language ----------------------------------------------------------

def _invite(client, tenant, email, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("member_invite", kwargs={"tenant_slug": tenant.slug}),
                               {"email": email, "role": Role.MEMBER})
    assert response.status_code == 302, response.content.decode()[:2000]
    return mail.outbox[-1]


def test_an_email_to_a_german_speaker_is_german_while_the_sender_works_in_english(
        client_for, owner, tenant, django_capture_on_commit_callbacks):
    german = UserFactory(email="gruezi@example.ch")
    languages.set_user_language(german, "de")
    client = client_for(owner)
    assert "Your role: Owner" in visible_text(client.get(_home(tenant), HTTP_ACCEPT_LANGUAGE="en"))

    message = _invite(client, tenant, "Gruezi@example.ch", django_capture_on_commit_callbacks)

    assert message.subject == "Sie sind zu ACME eingeladen"
    assert "lädt Sie ein, ACME mit der Rolle Mitglied beizutreten" in message.body
    assert "Melden Sie sich mit dieser E-Mail-Adresse an" in message.body
    # ... and the sender's own page is still English.
    assert "Your role: Owner" in visible_text(client.get(_home(tenant), HTTP_ACCEPT_LANGUAGE="en"))


def test_an_invitation_to_someone_unknown_uses_the_tenants_language(
        client_for, owner, tenant, django_capture_on_commit_callbacks):
    Tenant.objects.filter(pk=tenant.pk).update(invoice_language="it")

    message = _invite(client_for(owner), tenant, "nuovo@example.ch",
                      django_capture_on_commit_callbacks)

    assert message.subject == "Invito a unirsi a ACME"


def test_emails_are_grouped_by_language(db, tenant):
    de, it = UserFactory(email="de@example.ch"), UserFactory(email="it@example.ch")
    languages.set_user_language(de, "de")
    languages.set_user_language(it, "it")
    addresses = ["de@example.ch", "it@example.ch", "nobody@example.ch", "DE@example.ch"]

    assert languages.by_language(addresses, tenant) == {
        "de": ["de@example.ch", "DE@example.ch"], "it": ["it@example.ch"],
        "en": ["nobody@example.ch"]}
    Tenant.objects.filter(pk=tenant.pk).update(invoice_language="fr")
    tenant.refresh_from_db()
    assert languages.by_language(["nobody@example.ch"], tenant) == {"fr": ["nobody@example.ch"]}


def test_allauths_own_emails_follow_the_accounts_language(client, db):
    person = UserFactory(email="passwort@example.ch")
    languages.set_user_language(person, "de")
    MembershipFactory(user=person)

    client.post(reverse("account_reset_password"), {"email": "passwort@example.ch"},
                HTTP_ACCEPT_LANGUAGE="en")

    [message] = mail.outbox
    assert message.to == ["passwort@example.ch"]
    assert "Passwort" in message.subject + message.body


# -- the tenant's invoice language ---------------------------------------------------------------

def _settings_url(tenant) -> str:
    return reverse("tenant_settings", kwargs={"tenant_slug": tenant.slug})


def test_owners_and_admins_set_the_invoice_language(client_for, owner, tenant_admin, tenant):
    assert tenant.invoice_language == "en"  # settings.LANGUAGE_CODE

    response = client_for(tenant_admin).post(_settings_url(tenant),
                                             {"name": tenant.name, "invoice_language": "de"})

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.invoice_language == "de"
    entry = AuditEntry.objects.get(verb="tenant.settings", tenant=tenant)
    assert entry.changes == {"invoice_language": ["en", "de"]}
    page = client_for(owner).get(_settings_url(tenant))
    assert '<option value="de" selected>' in page.content.decode()


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER, Role.BILLING])
def test_other_roles_cannot_set_the_invoice_language(client_for, owner, tenant, role):
    person = MembershipFactory(tenant=tenant, role=role).user
    response = client_for(person).post(_settings_url(tenant),
                                       {"name": tenant.name, "invoice_language": "de"})
    assert response.status_code == 403
    tenant.refresh_from_db()
    assert tenant.invoice_language == "en"


def test_an_outsider_cannot_see_or_set_the_invoice_language(client_for, outsider, tenant):
    response = client_for(outsider).post(_settings_url(tenant),
                                         {"name": "x", "invoice_language": "de"})
    assert response.status_code == 404
    tenant.refresh_from_db()
    assert tenant.invoice_language == "en"


def test_an_unknown_invoice_language_is_refused_beside_the_field(client_for, owner, tenant):
    response = client_for(owner).post(_settings_url(tenant),
                                      {"name": tenant.name, "invoice_language": "xx"},
                                      HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert 'data-field="invoice_language"' in response.content.decode()


def test_the_api_shows_the_invoice_language(client_for, owner, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(invoice_language="it")
    body = client_for(owner).get(reverse("api:tenant", kwargs={"tenant_slug": tenant.slug})).json()
    assert body["invoice_language"] == "it"
