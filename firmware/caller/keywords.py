"""A partner's own SMS about sharing with the care worker (docs/care.md, R6, R9): "STOP DELEN" /
"STOP SHARING" withdraws that partner's consent (all of it, or the categories named after it),
"LOGBOEK" / "ACCESS LOG" asks for the household's access log. Only from that partner's own
number (the caller knows it); the caller relays the request to the consent filter and texts its
answer back to that partner only. Also the texts those answers become, per language."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from core.texts import (
    ACCESS_ACTIONS,
    ACCESS_REFUSED,
    ACCESS_WHO,
    SHARE_ALL,
    SHARE_CATEGORY_WORDS,
    say,
)
from mqtt.schemas import AccessEntry

SMS_LIMIT = 160
_WITHDRAW = ("stop delen", "stop sharing")
_ACCESS_LOG = ("logboek", "access log", "toegangslog")
_FILLERS = {"en", "and", "voor", "for", "van", "of"}
_WORDS: dict[str, str] = {w: cat for cat, by_lang in SHARE_CATEGORY_WORDS.items()
                          for words in by_lang.values() for w in (cat, *words)}


@dataclass(frozen=True)
class Keyword:
    kind: Literal["withdraw", "access_log"]
    categories: tuple[str, ...] = ()      # none: all of them


@dataclass(frozen=True)
class Unclear:
    why: str                              # for the log; never the text itself


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[.,;:!?()]", " ", text.lower()).split())


def read_keyword(text: str) -> Keyword | Unclear | None:
    """The request in a text, Unclear when it starts as one but is not, None when it is none."""
    t = _plain(text)
    if t in _ACCESS_LOG:
        return Keyword("access_log")
    start = next((k for k in _WITHDRAW if t == k or t.startswith(k + " ")), None)
    if start is None:
        return None
    cats: list[str] = []
    for w in t[len(start):].split():
        if w in _FILLERS:
            continue
        if w not in _WORDS:
            return Unclear("a word after STOP that is not a category")
        if _WORDS[w] not in cats:
            cats.append(_WORDS[w])
    return Keyword("withdraw", tuple(cats))


def category_word(category: str, lang: str) -> str:
    return SHARE_CATEGORY_WORDS[category].get(lang, SHARE_CATEGORY_WORDS[category]["en"])[0]


def withdrawn_text(categories: list[str], lang: str) -> str:
    return say("sms.share_withdrawn", lang,
               categories=", ".join(category_word(c, lang) for c in categories))


def unclear_text(lang: str) -> str:
    return say("sms.share_unclear", lang,
               words=", ".join(category_word(c, lang) for c in SHARE_CATEGORY_WORDS))


def entry_text(e: AccessEntry, lang: str) -> str:
    """One entry as a partner reads it: when, who (a role), what; never an answer or a name."""
    role = "worker" if e.who.startswith("worker.") else e.who
    who = ACCESS_WHO.get(role, ACCESS_WHO["installer"]).get(lang, role)
    if role == "worker":
        who = f"{who} {e.who.removeprefix('worker.')}"
    what = ACCESS_ACTIONS.get(e.action, {}).get(lang, e.action)
    if e.action.startswith("consent.") and ":" in e.detail:
        partner, cats = e.detail.split(":", 1)
        named = ", ".join(category_word(c, lang) for c in cats.split(",") if c in SHARE_CATEGORY_WORDS)
        if set(cats.split(",")) == set(SHARE_CATEGORY_WORDS):
            named = SHARE_ALL.get(lang, SHARE_ALL["en"])
        whose = "" if partner == e.who else f"{ACCESS_WHO.get(partner, {}).get(lang, '')} "
        what = f"{what} ({whose}{named})"
    if not e.allowed:
        what = f"{what}, {ACCESS_REFUSED.get(lang, 'refused')}"
    return f"{e.ts.astimezone():%d-%m %H:%M} {who}: {what}"


def access_log_text(entries: list[AccessEntry], lang: str, limit: int = SMS_LIMIT) -> str:
    """The newest entries that fit in one SMS, newest first."""
    if not entries:
        return say("sms.access_log_empty", lang)
    shown: list[str] = []
    for e in reversed(entries):
        candidate = say("sms.access_log", lang, entries="; ".join([*shown, entry_text(e, lang)]))
        if len(candidate) > limit and shown:
            break
        shown.append(entry_text(e, lang))
    return say("sms.access_log", lang, entries="; ".join(shown))[:limit]
