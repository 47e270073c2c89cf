"""French, German and Italian are complete: every message of the project's code and templates
has a text in each, the compiled catalogues match them, and pages come out in the language asked
for.

When this fails after you added or changed a message: run ``make messages``, translate the
empty or fuzzy entries in ``locale/{fr,de,it}/LC_MESSAGES/django.po`` (``python
scripts/missing_translations.py`` lists them), then run ``make messages`` again (it compiles the
``.mo``).
"""

from __future__ import annotations

import hashlib
import os
import re
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
LANGUAGES = ("fr", "de", "it")
"""Every language beside English; each must be complete."""
# Top-level entries makemessages must not walk (third-party code, generated files, state).
NOT_SOURCE = {".venv", "node_modules", "locale", "staticfiles", "var", "test-artifacts"}


def _po(lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES/django.po"


def _mo(lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES/django.mo"


def _how_to_fix(lang: str) -> str:
    return (f"run `make messages`, translate the entries in locale/{lang}/LC_MESSAGES/django.po "
            "(scripts/missing_translations.py lists them), then run `make messages` again")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _require_gettext() -> None:
    missing = [tool for tool in ("xgettext", "msgmerge", "msguniq", "msgfmt")
               if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"GNU gettext is needed to check messages ({', '.join(missing)} missing): "
                    "apt-get install gettext")


@pytest.fixture(scope="module")
def current_catalogues(tmp_path_factory) -> dict[str, polib.POFile]:
    """Each catalogue as ``make messages`` would leave it for the code as it is now.

    makemessages runs in a scratch tree whose source folders are symlinks to the checkout and
    whose ``locale/`` is a copy, so the real catalogues are never touched by the test.
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
    before = {lang: _digest(_po(lang)) for lang in LANGUAGES}

    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", *(f"-l{lang}" for lang in LANGUAGES),
         "--no-obsolete", "--no-location", "--symlinks", "-i", "node_modules", "-i", ".venv",
         "-i", "staticfiles"],
        cwd=scratch, env=env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-4000:]
    assert {lang: _digest(_po(lang)) for lang in LANGUAGES} == before, \
        "the check must not rewrite the real catalogues"
    return {lang: polib.pofile(str(scratch / "locale" / lang / "LC_MESSAGES/django.po"))
            for lang in LANGUAGES}


def _describe(entry: polib.POEntry) -> str:
    state = "fuzzy" if "fuzzy" in entry.flags else "empty"
    context = f" [context {entry.msgctxt!r}]" if entry.msgctxt else ""
    return f"  - ({state}) {entry.msgid!r}{context}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_of_the_project_has_a_text_in_each_language(current_catalogues, lang):
    missing = [entry for entry in current_catalogues[lang]
               if not entry.obsolete and not entry.translated()]
    assert not missing, (
        f"{lang}: a text is missing for {len(missing)} message(s); {_how_to_fix(lang)}:\n"
        + "\n".join(_describe(entry) for entry in missing))


def test_the_catalogue_is_not_empty(current_catalogues):
    # Guards the check above: an extraction that found nothing would pass it vacuously.
    for lang in LANGUAGES:
        msgids = {entry.msgid for entry in current_catalogues[lang]}
        assert {"Your tenants", "This invitation code is not valid.", "Owner"} <= msgids
        assert len(msgids) > 100


def test_every_language_has_the_same_messages():
    keys = {lang: {(e.msgctxt, e.msgid) for e in polib.pofile(str(_po(lang))) if not e.obsolete}
            for lang in LANGUAGES}
    for lang in LANGUAGES[1:]:
        assert keys[lang] == keys["fr"], (
            lang, sorted(keys["fr"] - keys[lang])[:20], sorted(keys[lang] - keys["fr"])[:20])


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_shipped_catalogue_has_no_fuzzy_or_empty_entries(lang):
    catalogue = polib.pofile(str(_po(lang)))
    untranslated = [e.msgid for e in catalogue.untranslated_entries()]
    fuzzy = [e.msgid for e in catalogue.fuzzy_entries()]
    assert not untranslated and not fuzzy, (lang, untranslated, fuzzy)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_match_the_english_ones(lang):
    _require_gettext()
    result = subprocess.run(["msgfmt", "--check-format", "--check-header", "-o", os.devnull,
                             str(_po(lang))], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_named_placeholder_is_kept(lang):
    # msgfmt checks only the entries flagged python-format; a template's blocktranslate
    # placeholders are named too, and a lost one would drop a value from the page.
    lost = []
    for e in polib.pofile(str(_po(lang))):
        wanted = set(_PLACEHOLDER.findall(e.msgid + (e.msgid_plural or "")))
        texts = list(e.msgstr_plural.values()) if e.msgid_plural else [e.msgstr]
        given = set(_PLACEHOLDER.findall("".join(texts)))
        if given - wanted or (not e.msgid_plural and wanted != given):
            lost.append((e.msgid, sorted(wanted ^ given)))
    assert not lost, lost


def test_german_is_written_the_swiss_way():
    sharp_s = [e.msgid for e in polib.pofile(str(_po("de")))
               if "ß" in e.msgstr + "".join(e.msgstr_plural.values())]
    assert not sharp_s, sharp_s


def _entries(catalogue) -> dict[tuple[str | None, str], object]:
    return {(e.msgctxt, e.msgid): e.msgstr_plural and dict(e.msgstr_plural) or e.msgstr
            for e in catalogue if not e.obsolete and "fuzzy" not in e.flags and e.msgid}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_compiled_catalogue_matches_the_po_file(tmp_path, lang):
    compiled = tmp_path / "django.mo"
    polib.pofile(str(_po(lang))).save_as_mofile(str(compiled))
    shipped = _entries(polib.mofile(str(_mo(lang))))
    expected = _entries(polib.mofile(str(compiled)))
    stale = sorted(str(key[1]) for key in expected.keys() ^ shipped.keys()
                   | {k for k in expected.keys() & shipped.keys() if expected[k] != shipped[k]})
    assert not stale, (f"{lang}: django.mo is out of date ({len(stale)} entries); "
                       f"{_how_to_fix(lang)}: {stale[:20]}")


def test_there_are_no_script_catalogues_to_translate():
    # The pages' scripts carry no words (djangojs): should one appear, it needs every language.
    scripts = sorted(str(p.relative_to(LOCALE)) for p in LOCALE.glob("*/LC_MESSAGES/djangojs.po"))
    assert scripts in ([], [f"{lang}/LC_MESSAGES/djangojs.po" for lang in sorted(LANGUAGES)])


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
