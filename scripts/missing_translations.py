"""List the messages a catalogue still lacks: empty or fuzzy entries in locale/*/LC_MESSAGES/
django.po, and messages another catalogue has that this one does not (a French entry added by
hand without ``make messages``).

    .venv/bin/python scripts/missing_translations.py              # every language; exit 1 if any
    .venv/bin/python scripts/missing_translations.py de it        # only these
    .venv/bin/python scripts/missing_translations.py --json de    # for a translator: JSON lines
    .venv/bin/python scripts/missing_translations.py --from-code  # the code's messages, too

The catalogues are read as they are: after ``make messages`` they hold every message of the
code (new ones as empty entries). ``--from-code`` instead runs ``makemessages`` on a scratch
copy of ``locale/`` (the real catalogues are not touched), as tests/portal/test_i18n.py does, so
messages added to the code but to no catalogue are listed as well.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
NOT_SOURCE = {".venv", "node_modules", "locale", "staticfiles", "var", "test-artifacts"}


def extract_into_scratch(scratch: Path) -> Path:
    """``makemessages`` for every catalogue, on a copy of ``locale/`` in ``scratch``; returns
    the copy."""
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in NOT_SOURCE:
            (scratch / entry.name).symlink_to(entry)
    shutil.copytree(LOCALE, scratch / "locale")
    languages = sorted(p.parent.parent.name for p in LOCALE.glob("*/LC_MESSAGES/django.po"))
    env = {**os.environ, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "portal.settings",
           "PORTAL_VAR_DIR": str(scratch / "var")}
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", *(f"-l{lang}" for lang in languages),
         "--no-obsolete", "--no-location", "--symlinks", "-i", "node_modules", "-i", ".venv",
         "-i", "staticfiles"],
        cwd=scratch, env=env, check=True, capture_output=True, text=True, timeout=600)
    return scratch / "locale"


def _key(entry: polib.POEntry) -> tuple[str | None, str]:
    return entry.msgctxt, entry.msgid


def catalogues(languages: list[str] | None = None,
               locale: Path = LOCALE) -> dict[str, polib.POFile]:
    found = {path.parent.parent.name: polib.pofile(str(path))
             for path in sorted(locale.glob("*/LC_MESSAGES/django.po"))}
    return {lang: po for lang, po in found.items() if not languages or lang in languages}


def missing(languages: list[str] | None = None,
            locale: Path = LOCALE) -> dict[str, list[polib.POEntry]]:
    """Per language: its untranslated or fuzzy entries, then the messages only others have."""
    every = catalogues(locale=locale)
    known: dict[tuple[str | None, str], polib.POEntry] = {}
    for po in every.values():
        for entry in po:
            if not entry.obsolete and entry.msgid:
                known.setdefault(_key(entry), entry)
    result = {}
    for lang, po in catalogues(languages, locale).items():
        own = {_key(e) for e in po if not e.obsolete}
        todo = [e for e in po if not e.obsolete and e.msgid
                and (not e.translated() or "fuzzy" in e.flags)]
        todo += [polib.POEntry(msgid=e.msgid, msgid_plural=e.msgid_plural, msgctxt=e.msgctxt,
                               flags=list(e.flags))
                 for key, e in known.items() if key not in own]
        result[lang] = todo
    return result


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    languages = [a for a in argv if not a.startswith("-")] or None
    if "--from-code" in argv:
        with tempfile.TemporaryDirectory() as scratch:
            return report(extract_into_scratch(Path(scratch)), languages, as_json)
    return report(LOCALE, languages, as_json)


def report(locale: Path, languages: list[str] | None, as_json: bool) -> int:
    french_po = catalogues(["fr"], locale).get("fr")
    french = {_key(e): e.msgstr for e in french_po} if french_po is not None else {}
    result = missing(languages, locale)
    total = 0
    for lang, entries in result.items():
        total += len(entries)
        if as_json:
            for entry in entries:
                print(json.dumps({"language": lang, "msgid": entry.msgid,
                                  "msgid_plural": entry.msgid_plural or None,
                                  "msgctxt": entry.msgctxt, "fr": french.get(_key(entry))},
                                 ensure_ascii=False))
            continue
        print(f"{lang}: {len(entries)} missing or fuzzy")
        for entry in entries:
            state = "fuzzy" if "fuzzy" in entry.flags else "missing"
            plural = f" / {entry.msgid_plural!r}" if entry.msgid_plural else ""
            print(f"  ({state}) {entry.msgid!r}{plural}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
