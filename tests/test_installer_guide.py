"""The installer guide (docs/guides/installer.*.md, issue 15 item 6) must say what the code does:
every `timeout-hub` command and option it names exists, its table of the wizard's steps is the
wizard's steps in order with their own titles, a step the wizard does not do yet is called not
built there, and both languages have the same sections, tables and commands."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware.cli import OWN_PARSERS, build_parser
from firmware.provision import steps, wizard
from firmware.provision.texts import t
from tests.test_guides import PRONOUNS, flat, read, tables

ROOT = Path(__file__).resolve().parents[1]
LANGS = ("nl", "en")
GUIDE = {lang: ROOT / "docs" / "guides" / f"installer.{lang}.md" for lang in LANGS}
NOT_BUILT = {"nl": "nog niet", "en": "not built"}


def commands(text: str) -> list[list[str]]:
    return [m.group(1).split() for m in re.finditer(r"timeout-hub ([a-z-]+(?: [^`\n]*)?)", text)]


@pytest.mark.parametrize("lang", LANGS)
def test_every_command_and_option_the_guide_names_exists(lang):
    sub = build_parser()._subparsers._group_actions[0].choices   # type: ignore[union-attr]
    named = commands(read(GUIDE[lang]))
    assert {c[0] for c in named} >= {"provision", "doctor", "reset", "check-config"}
    for words in named:
        assert words[0] in sub, f"installer.{lang}.md names `timeout-hub {words[0]}`"
        options = [w for w in words[1:] if w.startswith("--")]
        if words[0] == "provision":
            known = {o for a in wizard.parser()._actions for o in a.option_strings}
        elif words[0] in OWN_PARSERS:
            continue   # they parse their own options (checked by their own tests)
        else:
            known = {o for a in sub[words[0]]._actions for o in a.option_strings}
        assert set(options) <= known, f"`timeout-hub {' '.join(words)}`: {set(options) - known}"


@pytest.mark.parametrize("lang", LANGS)
def test_the_steps_table_is_the_wizards_steps_in_order_and_says_which_are_not_built(lang):
    rows = next(rows for head, rows in tables(read(GUIDE[lang])) if head[0] in ("Step", "Stap"))
    assert [re.sub(r"\*\*", "", r[0]) for r in rows] == [t(lang, s) for s in wizard.STEPS]
    for (step, row) in zip(wizard.STEPS, rows, strict=True):
        built = wizard.RUN.get(step) is not steps.not_built
        assert (NOT_BUILT[lang] not in row[1]) == built, (step, row[1])


def test_both_languages_have_the_same_sections_tables_and_commands():
    def outline(path: Path):
        text = read(path)
        return ([len(m.group(1)) for m in re.finditer(r"^(#+) ", text, re.M)],
                [len(rows) for _, rows in tables(text)],
                sorted(" ".join(c) for c in commands(text) if "<" not in " ".join(c)))
    nl, en = (outline(GUIDE[lang]) for lang in LANGS)
    assert nl[:2] == en[:2]
    assert [c.replace("--lang nl", "--lang en") for c in nl[2]] == en[2]


@pytest.mark.parametrize("lang", LANGS)
def test_no_he_or_she_and_the_guide_is_linked(lang):
    text = read(GUIDE[lang])
    said = [w for w in PRONOUNS[lang] if re.search(rf"(?<![\w/]){re.escape(w)}(?![\w/])", text, re.I)]
    assert not said, said
    assert f"](docs/guides/installer.{lang}.md)" in read(ROOT / "README.md")
    assert f"](installer.{lang}.md)" in read(ROOT / "docs" / "guides" / "README.md")
    assert "provision-state.json" in flat(text)   # how resuming works, as the wizard does it
