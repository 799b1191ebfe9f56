"""Step 2 without a prepared file: the plan interview. The installer asks both partners the
plan's questions one by one; the answers make household.toml. Tags are paired only in step 4, so
until then the plan is a draft that is valid except for "no tag" (`load_draft`)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.hub.plan import HouseholdPlan, validate_plan
from firmware.provision.ask import Asker

CONSENT = ("procedure", "checkin", "call", "sensing", "presence", "evaluation")
# placeholders that stand in for the tags step 4 pairs; never written to a file
_DRAFT_TAGS = {"a": "irk:" + "0" * 32, "b": "irk:" + "1" * 32}

Q: dict[str, dict[str, str]] = {
    "language": {"nl": "Taal van partner {p} (nl/en)", "en": "Partner {p}'s language (nl/en)"},
    "wearable": {"nl": "Heeft partner {p} een draagbaar kastje (GPS)? (ja/nee)",
                 "en": "Does partner {p} have a wearable (GPS)? (yes/no)"},
    "sms_checkins": {"nl": "Beantwoordt partner {p} check-ins per sms op de eigen telefoon? (ja/nee)",
                     "en": "Does partner {p} answer check-ins by SMS on their own phone? (yes/no)"},
    "calming_tasks": {"nl": "Kalmeringstaken van partner {p}, in eigen woorden, met komma's",
                      "en": "Partner {p}'s calming tasks, in their own words, comma-separated"},
    "contacts": {"nl": "Hoeveel contactpersonen kiest partner {p} (0-3)",
                 "en": "How many contacts does partner {p} choose (0-3)"},
    "consent": {"nl": "Wat mag partner {p} delen met de hulpverlener ({all}; met komma's, leeg: niets)",
                "en": "What partner {p} allows to share with the care worker ({all}; comma-separated, empty: nothing)"},
    "leaver": {"nl": "Wie vertrekt: 'announcer' (wie de time-out start), 'a' of 'b'",
               "en": "Who leaves: 'announcer' (who starts the time-out), 'a' or 'b'"},
    "minimum_minutes": {"nl": "Minimale duur van een time-out in minuten (20-240)",
                        "en": "Minimum length of a time-out in minutes (20-240)"},
    "leave_grace_minutes": {"nl": "Minuten om te vertrekken (1-30)", "en": "Minutes to leave (1-30)"},
    "indoor_separation": {"nl": "Binnen-scheiding als vertrekken niet kan? (ja/nee)",
                          "en": "Indoor separation when leaving is not possible? (yes/no)"},
    "on_early_return": {"nl": "Contactpersonen bellen bij te vroeg terugkomen? (ja/nee)",
                        "en": "Call contacts when the leaver returns early? (yes/no)"},
    "on_not_calm": {"nl": "Contactpersonen bellen als een partner na de time-out niet rustig is? (ja/nee)",
                    "en": "Call contacts when a partner is not calm after the time-out? (yes/no)"},
    "on_no_answer": {"nl": "Contactpersonen bellen bij geen antwoord op de check-in? (ja/nee)",
                     "en": "Call contacts when a check-in gets no answer? (yes/no)"},
    "lead_when_disagreeing": {"nl": "Wie neemt de leiding bij onenigheid: 'stayer', 'leaver', 'a' of 'b'",
                              "en": "Who takes the lead when the partners disagree: 'stayer', 'leaver', 'a' or 'b'"},
    "evaluation_dates": {"nl": "Evaluatiedata (JJJJ-MM-DD, met komma's)",
                         "en": "Evaluation dates (YYYY-MM-DD, comma-separated)"},
    "children_present": {"nl": "Wonen er kinderen in huis? (ja/nee)", "en": "Do children live in the home? (yes/no)"},
    "children_protection": {"nl": "Hoe worden de kinderen beschermd tijdens een time-out (wie blijft bij hen)",
                            "en": "How are the children protected during a time-out (who stays with them)"},
    "retention_days": {"nl": "Bewaartermijn van de overzichten in dagen (7-730)",
                       "en": "How long summaries are kept, in days (7-730)"},
}
BAD = {
    "choice": {"nl": "kies uit: {opts}", "en": "choose one of: {opts}"},
    "number": {"nl": "geef een getal van {lo} tot {hi}", "en": "give a number from {lo} to {hi}"},
    "tasks": {"nl": "geef 1 tot 10 taken van hoogstens 80 tekens", "en": "give 1 to 10 tasks of at most 80 characters"},
    "date": {"nl": "{v!r} is geen datum in de toekomst (JJJJ-MM-DD)", "en": "{v!r} is not a future date (YYYY-MM-DD)"},
    "consent": {"nl": "{v!r} is geen categorie ({all})", "en": "{v!r} is not a category ({all})"},
    "yes_no": {"nl": "antwoord ja of nee", "en": "answer yes or no"},
    "text": {"nl": "schrijf het op in hoogstens 400 tekens", "en": "write it down in at most 400 characters"},
}


def _items(v: Any) -> list[str]:
    return [str(x).strip() for x in (v if isinstance(v, list) else str(v).split(",")) if str(x).strip()]


def interview(ask: Asker, lang: str, household: str, today: dt.date) -> dict[str, Any]:
    """The plan's data from the installer's answers (names `plan.interview.KEY` or
    `plan.interview.a_KEY`), each one checked as it is given."""
    def bad(key: str, **kw: object) -> ValueError:
        return ValueError(BAD[key][lang].format(**kw))

    def choice(*opts: str) -> Callable[[Any], str]:
        def parse(v: Any) -> str:
            if str(v).strip().lower() not in opts:
                raise bad("choice", opts=", ".join(opts))
            return str(v).strip().lower()
        return parse

    def number(lo: int, hi: int) -> Callable[[Any], int]:
        def parse(v: Any) -> int:
            if not str(v).strip().isdigit() or not lo <= int(v) <= hi:
                raise bad("number", lo=lo, hi=hi)
            return int(v)
        return parse

    def yes(v: Any) -> bool:
        if isinstance(v, bool):
            return v
        if str(v).strip().lower() in ("y", "yes", "j", "ja"):
            return True
        if str(v).strip().lower() in ("n", "no", "nee"):
            return False
        raise bad("yes_no")

    def tasks(v: Any) -> list[str]:
        out = _items(v)
        if not 1 <= len(out) <= 10 or any(len(x) > 80 for x in out):
            raise bad("tasks")
        return out

    def dates(v: Any) -> list[dt.date]:
        out = []
        for x in _items(v):
            try:
                d = x if isinstance(x, dt.date) else dt.date.fromisoformat(x)
            except ValueError:
                raise bad("date", v=x) from None
            if d <= today:
                raise bad("date", v=x)
            out.append(d)
        return out

    def consent(v: Any) -> dict[str, bool]:
        given = [x.lower() for x in _items(v)]
        for x in given:
            if x not in CONSENT:
                raise bad("consent", v=x, all=", ".join(CONSENT))
        return {c: c in given for c in CONSENT}

    def text(v: Any) -> str:
        if len(str(v).strip()) > 400:
            raise bad("text")
        return str(v).strip()

    def q(key: str, parse: Callable[[Any], Any], default: Any = None, p: str = "") -> Any:
        name = f"plan.interview.{p + '_' if p else ''}{key}"
        return ask.ask(name, Q[key][lang].format(p=p, all=", ".join(CONSENT)), parse, default=default)

    data: dict[str, Any] = {"household": household, "partners": {}, "consent": {}}
    for p in ("a", "b"):
        data["partners"][p] = {
            "language": q("language", choice("nl", "en"), "nl", p), "tags": [],
            "wearable": q("wearable", yes, "nee" if lang == "nl" else "no", p),
            "sms_checkins": q("sms_checkins", yes, "nee" if lang == "nl" else "no", p),
            "calming_tasks": q("calming_tasks", tasks, None, p),
            "contacts": q("contacts", number(0, 3), None, p)}
        data["consent"][p] = q("consent", consent, "", p)
    data["timeout"] = {
        "leaver": q("leaver", choice("announcer", "a", "b"), "announcer"),
        "minimum_minutes": q("minimum_minutes", number(20, 240), 20),
        "leave_grace_minutes": q("leave_grace_minutes", number(1, 30), 5),
        "indoor_separation": q("indoor_separation", yes, "nee" if lang == "nl" else "no")}
    data["calls"] = {k: q(k, yes, "ja" if lang == "nl" else "yes")
                     for k in ("on_early_return", "on_not_calm", "on_no_answer")}
    data["lead_when_disagreeing"] = q("lead_when_disagreeing", choice("stayer", "leaver", "a", "b"), "stayer")
    data["evaluation_dates"] = q("evaluation_dates", dates, "")
    present = q("children_present", yes)
    data["children"] = {"present": present,
                        "protection": q("children_protection", text) if present else ""}
    data["retention_days"] = q("retention_days", number(7, 730), 90)
    return data


def draft_plan(data: dict[str, Any]) -> HouseholdPlan:
    """Validate a plan whose tags step 4 has yet to pair: every other rule holds."""
    import copy
    d = copy.deepcopy(data)
    for p, pp in d.get("partners", {}).items():
        if isinstance(pp, dict) and not pp.get("tags") and not pp.get("wearable") and p in _DRAFT_TAGS:
            pp["tags"] = [_DRAFT_TAGS[p]]
    return validate_plan(d)


def load_draft(path: Path) -> HouseholdPlan:
    from core.config import read_toml
    return draft_plan(read_toml(path))
