"""The UI's translations: English and German have the same keys, and every key the pages use exists."""

from __future__ import annotations

import json
import re

from meterhub.web.app import STATIC_DIR


def test_english_and_german_have_the_same_keys_and_no_empty_text() -> None:
    en = json.loads((STATIC_DIR / "i18n" / "en.json").read_text(encoding="utf-8"))
    de = json.loads((STATIC_DIR / "i18n" / "de.json").read_text(encoding="utf-8"))
    assert set(en) == set(de)
    assert all(v.strip() for v in [*en.values(), *de.values()])
    assert de["nav.config"] == "Konfiguration" and en["nav.config"] == "Configuration"


def test_every_literal_key_used_by_the_pages_is_translated() -> None:
    en = json.loads((STATIC_DIR / "i18n" / "en.json").read_text(encoding="utf-8"))
    used = set()
    for js in (STATIC_DIR / "js").rglob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z0-9_]+\.[a-z0-9_]+)"', js.read_text(encoding="utf-8")))
    assert len(used) > 100
    assert sorted(used - set(en)) == []
