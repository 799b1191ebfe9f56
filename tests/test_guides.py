"""The people's guides (docs/guides/) must say what the code does. A household that reads a light
wrongly, or a contact person who waits for a message that is not the one they hear, is misled in
the middle of a time-out; so each check reads the value from the code and looks for it in the
guide, and fails when either side drifts."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.texts import CALL_MESSAGE, CALL_SMS, TEXTS, digit_choices, options

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ROOT / "docs" / "guides"
LANGS = ("nl", "en")
HOUSEHOLD = {lang: GUIDES / f"household.{lang}.md" for lang in LANGS}
LEAFLET = {lang: GUIDES / f"contact-person.{lang}.md" for lang in LANGS}
ALL = [*HOUSEHOLD.values(), *LEAFLET.values()]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def flat(text: str) -> str:
    """The guide as running text: wrapped lines joined, blockquote markers dropped."""
    return re.sub(r"\s+", " ", re.sub(r"^> ?", "", text, flags=re.M))


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table: (header cells, body rows of cells)."""
    found: list[tuple[list[str], list[list[str]]]] = []
    block: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if len(block) >= 2:
            found.append((block[0], block[2:]))
        block = []
    return found


def bold(cell: str) -> str:
    m = re.match(r"\*\*(.+?)\*\*", cell)
    assert m, f"the first cell {cell!r} does not start with the part's name in bold"
    return m.group(1)


# -- the panel ------------------------------------------------------------------------------------
# The name on each light's or button's label, per language, and the pins (firmware/panel/service.py
# PanelPins) it is. A light added to the panel, or a guide naming one that does not exist, fails.
PANEL_PARTS: dict[str, dict[str, set[str]]] = {
    "en": {"sensing": {"sensing_led"}, "suggestion": {"suggestion_led"}, "time-out": {"active_led"},
           "question": {"question_led"}, "thermometer bar": {"bar"}, "fault": {"fault_led"},
           "time-out button": {"timeout_button", "timeout_led"}, "mood buttons": {"mood_buttons"},
           "buzzer": {"buzzer"}},
    "nl": {"meten": {"sensing_led"}, "voorstel": {"suggestion_led"}, "time-out": {"active_led"},
           "vraag": {"question_led"}, "thermometerbalk": {"bar"}, "storing": {"fault_led"},
           "time-outknop": {"timeout_button", "timeout_led"}, "stemmingsknoppen": {"mood_buttons"},
           "zoemer": {"buzzer"}},
}
PANEL_HEADERS = {"en": ("Light", "Button"), "nl": ("Lampje", "Knop")}


@pytest.mark.parametrize("lang", LANGS)
def test_the_guide_explains_every_light_and_button_of_the_panel_and_no_other(lang):
    from firmware.panel.service import PanelPins
    names = [bold(row[0]) for head, rows in tables(read(HOUSEHOLD[lang]))
             if head[0] in PANEL_HEADERS[lang] for row in rows]
    assert len(names) == len(set(names)), names
    assert set(names) == set(PANEL_PARTS[lang]), (
        f"household.{lang}.md explains {sorted(names)}; the panel has {sorted(PANEL_PARTS[lang])}")
    pins = set().union(*PANEL_PARTS[lang].values())
    assert pins == set(PanelPins.model_fields), (
        "the panel's parts changed (PanelPins): explain the new part in both household guides, "
        f"then name it here; unexplained: {sorted(set(PanelPins.model_fields) - pins)}")


@pytest.mark.parametrize("lang", LANGS)
def test_the_mood_buttons_are_numbered_as_the_check_in_question_numbers_its_answers(lang):
    answers = options("checkin.how_do_you_feel", lang)
    label = ", ".join(f"{n} {word}" for n, word in sorted(answers.items()))
    assert f"({label})" in flat(read(HOUSEHOLD[lang]))


TIMING = {"en": re.compile(r"\((\d+(?:\.\d+)?) s on, (\d+(?:\.\d+)?) s off\)"),
          "nl": re.compile(r"\((\d+(?:,\d+)?) s aan, (\d+(?:,\d+)?) s uit\)")}
STEADY = {"en": "steady", "nl": "brandt continu"}
FAULT_HEADER = {"en": "How it blinks", "nl": "Hoe het knippert"}
OFFLINE = {"en": "cannot reach the hub", "nl": "kan de hub niet bereiken"}


def fault_rows(lang: str) -> list[tuple[tuple[float, float] | None, list[str], str]]:
    """(the blink stated in the first cell, the fault codes in the row, the row) of the fault table."""
    table = [rows for head, rows in tables(read(HOUSEHOLD[lang])) if head[0] == FAULT_HEADER[lang]]
    assert len(table) == 1, f"household.{lang}.md has no fault-light table headed {FAULT_HEADER[lang]!r}"
    out = []
    for row in table[0]:
        m = TIMING[lang].search(row[0])
        if m:
            blink: tuple[float, float] | None = tuple(  # type: ignore[assignment]
                float(x.replace(",", ".")) for x in m.groups())
        else:
            assert row[0] == STEADY[lang], f"no blink rhythm in {row[0]!r}"
            blink = None
        out.append((blink, re.findall(r"`([a-z_]+\.[a-z_.]+)`", " ".join(row)), " ".join(row)))
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_each_fault_code_in_the_guide_exists_lights_the_led_and_blinks_as_the_guide_says(lang):
    from firmware.panel.service import FAULT_PATTERNS
    from mqtt.faults import FAULT_CLASSES, fault_class, light_group
    rows = fault_rows(lang)
    covered = set()
    for blink, codes, _row in rows:
        for code in codes:
            real = code if fault_class(code) else f"{code}.a.1"   # a family: ble.tag_missing
            fc = fault_class(real)
            assert fc is not None, f"{code} in household.{lang}.md is no fault class (mqtt/faults.py)"
            assert fc.action, f"{code} does not light the fault LED, yet the guide lists it"
            assert FAULT_PATTERNS[light_group(real)] == blink, (
                f"{code}: the panel blinks {FAULT_PATTERNS[light_group(real)]}, the guide says {blink}")
            covered.add(fc.code)
    lighting = {fc.code for fc in FAULT_CLASSES if fc.action}
    assert lighting <= covered, f"faults that light the LED and are not explained: {lighting - covered}"
    assert {b for b, _, _ in rows} == set(FAULT_PATTERNS.values()), (
        "the guide's blink rhythms are not the panel's (firmware/panel/service.py FAULT_PATTERNS)")
    offline = [row for b, _, row in rows if b == FAULT_PATTERNS["hub_offline"]]
    assert len(offline) == 1 and OFFLINE[lang] in offline[0]


# -- what partners read and contact persons hear ----------------------------------------------------
def hub_texts(lang: str) -> dict[str, re.Pattern[str]]:
    """Each text a person reads or hears, as a pattern: a field is a [placeholder] in the guide;
    `choices` is a real list of digits."""
    choices = "|".join(re.escape(digit_choices(n, lang)) for n in (2, 3))
    found = {}
    for key, template in [*((k, t[lang]) for k, t in TEXTS.items()),
                          ("call", CALL_MESSAGE[lang]), ("sms", CALL_SMS[lang])]:
        parts = re.split(r"(\{[a-z]+\})", template)
        found[key] = re.compile("".join(
            (f"(?:{choices})" if p == "{choices}" else r"\[[^\]]+\]") if re.fullmatch(r"\{[a-z]+\}", p)
            else re.escape(p) for p in parts))
    return found


def quotes(path: Path) -> list[str]:
    """Everything between curly quotes: the guides keep them for the hub's own words."""
    return [q.strip() for q in re.findall(r"“([^”]+)”", flat(read(path)))]


def quoted_keys(path: Path, lang: str) -> list[str]:
    texts = hub_texts(lang)
    keys = []
    for q in quotes(path):
        match = [k for k, pattern in texts.items() if pattern.fullmatch(q)]
        assert match, f"{path.name} quotes “{q}”, which the hub never says (core/texts.py)"
        keys.append(match[0])
    return keys


REQUIRED = {
    "household": ["checkin.how_do_you_feel", "reminder.calming_task", "notice.returned_early",
                  "notice.may_meet_again", "notice.take_more_time", "sms.reply_one_digit"],
    "contact-person": ["call", "sms"],
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("guide", ["household", "contact-person"])
def test_every_quoted_text_is_word_for_word_what_the_hub_says(guide, lang):
    path = GUIDES / f"{guide}.{lang}.md"
    keys = quoted_keys(path, lang)
    missing = [k for k in REQUIRED[guide] if k not in keys]
    assert not missing, f"{path.name} no longer quotes {missing} as core/texts.py has it"


@pytest.mark.parametrize("lang", LANGS)
def test_the_evaluation_questions_are_quoted_in_the_order_the_hub_asks_them(lang):
    from firmware.hub.procedure import EVALUATION
    keys = [k for k in quoted_keys(HOUSEHOLD[lang], lang) if k.startswith("evaluation.")]
    assert keys == [key for key, _ in EVALUATION], keys


# -- numbers a reader relies on -------------------------------------------------------------------
def bound(model, field: str, kind: str) -> float:
    for m in model.model_fields[field].metadata:
        if getattr(m, kind, None) is not None:
            return getattr(m, kind)
    raise AssertionError(f"{model.__name__}.{field} has no {kind}")


def numbers() -> list[tuple[str, str, str, float]]:
    """(guide, English phrase, Dutch phrase, the value from the code)."""
    from ble.presence import PresenceConfig
    from firmware.caller.service import CallerConfig
    from firmware.hub.plan import MIN_TIMEOUT_MINUTES, HouseholdPlan, TimeoutPlan
    from firmware.hub.procedure import (
        DEPART_CONFIRM_S,
        END_DEADLINE,
        END_PROMPTS_AT,
        EVALUATION_TIMEOUT,
        MORE_ROUNDS_AFTER_OVERNIGHT,
    )
    from firmware.panel.service import PanelConfig
    t = TimeoutPlan()
    retention = HouseholdPlan.model_fields["retention_days"].default
    return [
        ("household", "a time-out lasts at least {} minutes", "een time-out duurt minstens {} minuten",
         MIN_TIMEOUT_MINUTES),
        ("household", "Hold it for {} seconds to start a time-out", "Houd de knop {} seconden ingedrukt",
         PanelConfig.model_fields["long_press_seconds"].default),
        ("household", "It goes out by itself after {} minutes", "Het gaat vanzelf uit na {} minuten",
         t.suggestion_expires_minutes),
        ("household", "less than a minute up to {} minutes", "minder dan een minuut tot {} minuten",
         PresenceConfig().leave_max / 60),
        ("household", "then it waits {} more minutes", "dan wacht de hub nog {} minuten",
         DEPART_CONFIRM_S / 60),
        ("household", "If nobody has left after {} minutes", "Is na {} minuten nog niemand vertrokken",
         t.leave_grace_minutes),
        ("household", "Every {} minutes you are asked", "Elke {} minuten krijg je de vraag",
         t.checkin_every_minutes),
        ("household", "asked up to {} times", "tot {} keer", len(END_PROMPTS_AT)),
        ("household", "times in {} minutes", "keer in {} minuten", END_DEADLINE / 60),
        ("household", "a new round of {} minutes", "een nieuwe ronde van {} minuten", t.extension_minutes),
        ("household", "After {} rounds, you both get", "Na {} rondes krijgen jullie allebei",
         t.rounds_before_overnight),
        ("household", "After {} rounds that did not end calm", "Na {} rondes die niet rustig eindigden",
         t.rounds_before_overnight + MORE_ROUNDS_AFTER_OVERNIGHT),
        ("household", "within {} minutes", "binnen {} minuten", EVALUATION_TIMEOUT / 60),
        ("household", "after {} hours", "na {} uur", t.discuss_later_minutes / 60),
        ("household", "for {} days unless", "{} dagen tenzij", retention),
        ("household", "between {} and", "tussen {} en", bound(HouseholdPlan, "retention_days", "ge")),
        ("household", "and {} days", "en {} dagen", bound(HouseholdPlan, "retention_days", "le")),
        ("contact-person", "at least {} minutes", "minstens {} minuten", MIN_TIMEOUT_MINUTES),
        ("contact-person", "repeats the message up to {} times", "herhaalt het bericht tot {} keer",
         CallerConfig.model_fields["message_repeats"].default),
        ("contact-person", "in at least {} rounds", "in minstens {} rondes", bound(CallerConfig, "rounds", "ge")),
    ]


@pytest.mark.parametrize("lang", LANGS)
def test_the_times_and_counts_in_the_guides_are_the_codes(lang):
    wrong = []
    for guide, en, nl, value in numbers():
        phrase = (en if lang == "en" else nl).format(f"{value:g}")
        if phrase not in flat(read(GUIDES / f"{guide}.{lang}.md")):
            wrong.append(f"{guide}.{lang}.md: “{phrase}”")
    assert not wrong, "the code says otherwise than (or the guide no longer says): " + "; ".join(wrong)


# -- both languages, no names, the safety notes ------------------------------------------------------
def outline(path: Path) -> tuple[list[int], list[int], int, list[str]]:
    """Heading levels in order, the rows of each table, the number of quotes, the fault codes."""
    text = read(path)
    return ([len(m.group(1)) for m in re.finditer(r"^(#+) ", text, re.M)],
            [len(rows) for _, rows in tables(text)], len(quotes(path)),
            re.findall(r"`([a-z_]+\.[a-z_.]+)`", text))


@pytest.mark.parametrize("guide", ["household", "contact-person"])
def test_both_languages_have_the_same_sections_tables_and_quotes(guide):
    nl, en = (outline(GUIDES / f"{guide}.{lang}.md") for lang in LANGS)
    assert len(en[0]) >= 5
    for what, a, b in zip(("headings", "table rows", "quotes", "fault codes"), nl, en, strict=True):
        assert a == b, f"{guide}: the Dutch and English {what} differ: {a} / {b}"


FIRST_NAMES = ("Jan", "Piet", "Kees", "Henk", "Daan", "Sem", "Lucas", "Noah", "Mohammed", "Ahmed",
               "Anna", "Maria", "Sanne", "Emma", "Julia", "Sophie", "Lisa", "Fatima", "John", "Mary",
               "James", "Sarah", "Peter", "Linda")
PRONOUNS = {"en": ("he", "she", "him", "her", "his", "hers", "himself", "herself", "s/he"),
            "nl": ("hij", "zij", "hem", "haar", "hijzelf", "zijzelf")}


@pytest.mark.parametrize("path", [*ALL, GUIDES / "README.md"], ids=lambda p: p.name)
def test_no_names_and_no_he_or_she_for_a_partner(path):
    text = read(path)
    lang = "nl" if ".nl." in path.name else "en"
    names = [n for n in FIRST_NAMES if re.search(rf"\b{n}\b", text)]
    assert not names, f"{path.name} uses names (R14): {names}"
    said = [w for w in PRONOUNS[lang] if re.search(rf"(?<![\w/]){re.escape(w)}(?![\w/])", text, re.I)]
    assert not said, f"{path.name} says {said}: write neutrally (the partner who left, each of you)"


@pytest.mark.parametrize("lang", LANGS)
def test_the_household_guide_names_112_and_the_meldcode_and_the_leaflet_112(lang):
    household = flat(read(HOUSEHOLD[lang]))
    assert "112" in household and "Meldcode" in household and "Veilig Thuis" in household
    assert "112" in flat(read(LEAFLET[lang]))


def test_the_readme_and_the_index_link_every_guide_and_every_link_resolves():
    index, readme = read(GUIDES / "README.md"), read(ROOT / "README.md")
    for path in ALL:
        assert f"]({path.name})" in index, path.name
        assert f"](docs/guides/{path.name})" in readme, path.name
    for source in [GUIDES / "README.md", *ALL, ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#:\s]+)\)", read(source)):
            assert (source.parent / target).exists(), f"{source.name} links {target}, which is missing"
