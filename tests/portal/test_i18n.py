"""French is complete: every message of the project's code and templates has a French text,
the compiled catalogue matches it, and pages come out in French when asked for.

When this fails after you added or changed a message: run ``make messages``, translate the
empty or fuzzy entries in ``locale/fr/LC_MESSAGES/django.po``, then run ``make messages`` again
(it compiles the ``.mo``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.urls import reverse
from django.utils import translation

from tests.portal.pages import field_errors, visible_text

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "locale"
PO = LOCALE / "fr/LC_MESSAGES/django.po"
MO = LOCALE / "fr/LC_MESSAGES/django.mo"
# Top-level entries makemessages must not walk (third-party code, generated files, state).
NOT_SOURCE = {".venv", "node_modules", "locale", "staticfiles", "var", "test-artifacts"}
HOW_TO_FIX = ("run `make messages`, translate the entries in locale/fr/LC_MESSAGES/django.po, "
              "then run `make messages` again")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _require_gettext() -> None:
    missing = [tool for tool in ("xgettext", "msgmerge", "msguniq", "msgfmt")
               if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"GNU gettext is needed to check messages ({', '.join(missing)} missing): "
                    "apt-get install gettext")


@pytest.fixture(scope="module")
def current_catalogue(tmp_path_factory) -> polib.POFile:
    """The French catalogue as ``make messages`` would leave it for the code as it is now.

    makemessages runs in a scratch tree whose source folders are symlinks to the checkout and
    whose ``locale/`` is a copy, so the real catalogue is never touched by the test.
    """
    _require_gettext()
    scratch = tmp_path_factory.mktemp("makemessages")
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in NOT_SOURCE:
            (scratch / entry.name).symlink_to(entry)
    shutil.copytree(LOCALE, scratch / "locale")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({"DEBUG": "true", "DJANGO_SETTINGS_MODULE": "portal.settings",
                "PORTAL_VAR_DIR": str(scratch / "var")})
    before = _digest(PO)

    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "fr", "--no-obsolete",
         "--no-location", "--symlinks", "-i", "node_modules", "-i", ".venv", "-i", "staticfiles"],
        cwd=scratch, env=env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-4000:]
    assert _digest(PO) == before, "the check must not rewrite the real catalogue"
    return polib.pofile(str(scratch / "locale/fr/LC_MESSAGES/django.po"))


def _describe(entry: polib.POEntry) -> str:
    state = "fuzzy" if "fuzzy" in entry.flags else "empty"
    context = f" [context {entry.msgctxt!r}]" if entry.msgctxt else ""
    return f"  - ({state}) {entry.msgid!r}{context}"


def test_every_message_of_the_project_has_a_french_text(current_catalogue):
    missing = [entry for entry in current_catalogue
               if not entry.obsolete and not entry.translated()]
    assert not missing, (
        f"French is missing for {len(missing)} message(s); {HOW_TO_FIX}:\n"
        + "\n".join(_describe(entry) for entry in missing))


def test_the_catalogue_is_not_empty(current_catalogue):
    # Guards the check above: an extraction that found nothing would pass it vacuously.
    msgids = {entry.msgid for entry in current_catalogue}
    assert {"Your tenants", "This invitation code is not valid.", "Owner"} <= msgids
    assert len(msgids) > 100


def test_the_shipped_catalogue_has_no_fuzzy_or_empty_entries():
    catalogue = polib.pofile(str(PO))
    untranslated = [e.msgid for e in catalogue.untranslated_entries()]
    fuzzy = [e.msgid for e in catalogue.fuzzy_entries()]
    assert not untranslated and not fuzzy, (untranslated, fuzzy)


def test_french_placeholders_match_the_english_ones():
    _require_gettext()
    result = subprocess.run(["msgfmt", "--check-format", "--check-header", "-o", os.devnull,
                             str(PO)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _entries(catalogue) -> dict[tuple[str | None, str], object]:
    return {(e.msgctxt, e.msgid): e.msgstr_plural and dict(e.msgstr_plural) or e.msgstr
            for e in catalogue if not e.obsolete and "fuzzy" not in e.flags and e.msgid}


def test_the_compiled_catalogue_matches_the_po_file(tmp_path):
    compiled = tmp_path / "django.mo"
    polib.pofile(str(PO)).save_as_mofile(str(compiled))
    shipped = _entries(polib.mofile(str(MO)))
    expected = _entries(polib.mofile(str(compiled)))
    stale = sorted(str(key[1]) for key in expected.keys() ^ shipped.keys()
                   | {k for k in expected.keys() & shipped.keys() if expected[k] != shipped[k]})
    assert not stale, f"django.mo is out of date ({len(stale)} entries); {HOW_TO_FIX}: {stale[:20]}"


# -- what people see ---------------------------------------------------------------------------

def test_a_french_browser_gets_french_pages(client, db):
    page = client.get(reverse("account_login"), HTTP_ACCEPT_LANGUAGE="fr-CH,fr;q=0.9,en;q=0.5")

    assert page.status_code == 200
    assert '<html lang="fr">' in page.content.decode()
    text = visible_text(page)
    assert "Portail Kubernetes" in text
    assert "Mot de passe oublié" in text  # allauth's own French


def test_the_language_switcher_changes_the_language(client_for, owner, tenant):
    client = client_for(owner)
    home = reverse("tenant_home", kwargs={"tenant_slug": tenant.slug})
    assert "Your role: Owner" in visible_text(client.get(home))

    response = client.post(reverse("set_language"), {"language": "fr", "next": home})

    assert response.status_code == 302 and response["Location"] == home
    text = visible_text(client.get(home))
    assert "Votre rôle\u00a0: Propriétaire" in text
    assert "Membres" in text and "Journal d’audit" in text


def test_errors_beside_fields_are_in_french(client_for, user):
    client = client_for(user)
    client.post(reverse("set_language"), {"language": "fr", "next": "/"})

    response = client.post(reverse("tenant_create"), {"name": "Acme", "slug": "Acme-Corp"})

    assert response.status_code == 422
    [error] = field_errors(response, "slug")
    assert error.startswith("Utilisez uniquement des minuscules et des chiffres")


def test_role_names_and_the_permission_table_are_translated(client_for, owner, tenant):
    client = client_for(owner)
    page = client.get(reverse("members", kwargs={"tenant_slug": tenant.slug}),
                      HTTP_ACCEPT_LANGUAGE="fr")
    text = visible_text(page)
    for french in ("Propriétaire", "Lecteur", "Facturation", "Qui peut faire quoi",
                   "Transférer la propriété", "Inviter une personne"):
        assert french in text


@pytest.mark.parametrize("message", [
    "This invitation code is not valid.", "You cannot give a role above your own.",
    "This is the last owner. Transfer ownership to someone else first.",
])
def test_action_messages_have_a_french_text(message):
    with translation.override("fr"):
        assert translation.gettext(message) != message
