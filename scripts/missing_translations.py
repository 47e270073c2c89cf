"""List the messages a catalogue still lacks: empty or fuzzy entries in locale/*/LC_MESSAGES/
django.po, and messages another catalogue has that this one does not (a French entry added by
hand without ``make messages``).

    .venv/bin/python scripts/missing_translations.py              # every language; exit 1 if any
    .venv/bin/python scripts/missing_translations.py de it        # only these
    .venv/bin/python scripts/missing_translations.py --json de    # for a translator: JSON lines

Run ``make messages`` first, so that the catalogues hold every message of the code as it is
(it adds new messages as empty entries); tests/portal/test_i18n.py runs the same check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"


def _key(entry: polib.POEntry) -> tuple[str | None, str]:
    return entry.msgctxt, entry.msgid


def catalogues(languages: list[str] | None = None) -> dict[str, polib.POFile]:
    found = {path.parent.parent.name: polib.pofile(str(path))
             for path in sorted(LOCALE.glob("*/LC_MESSAGES/django.po"))}
    return {lang: po for lang, po in found.items() if not languages or lang in languages}


def missing(languages: list[str] | None = None) -> dict[str, list[polib.POEntry]]:
    """Per language: its untranslated or fuzzy entries, then the messages only others have."""
    every = catalogues()
    known: dict[tuple[str | None, str], polib.POEntry] = {}
    for po in every.values():
        for entry in po:
            if not entry.obsolete and entry.msgid:
                known.setdefault(_key(entry), entry)
    result = {}
    for lang, po in catalogues(languages).items():
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
    french = {_key(e): e.msgstr for e in catalogues(["fr"]).get("fr", [])} \
        if "fr" in catalogues() else {}
    result = missing(languages)
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
