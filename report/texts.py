"""What the evaluation report says, in Dutch and English (kept like core/texts.py: by key).

Neutral and true (R14): partners are "partner A" and "partner B", never names; a part that was
not consented says "not shared", never a number or "none" that it does not know.
"""
from __future__ import annotations

Lang = str   # "nl" | "en"

REPORT: dict[str, dict[str, str]] = {
    "title": {"nl": "Evaluatierapport", "en": "Evaluation report"},
    "household": {"nl": "Huishouden {household}", "en": "Household {household}"},
    "period": {"nl": "Periode {since} tot en met {until}", "en": "Period {since} to {until}"},
    "intro": {
        "nl": "Dit rapport toont alleen wat de partners hebben afgesproken te delen. "
              "\u201cNiet gedeeld\u201d betekent dat daar geen toestemming voor is; het zegt niets "
              "over wat er gebeurde.",
        "en": "This report shows only what the partners agreed to share. \u201cNot shared\u201d "
              "means there is no consent for that part; it says nothing about what happened."},
    "not_shared": {"nl": "niet gedeeld", "en": "not shared"},
    "partner_a": {"nl": "partner A", "en": "partner A"},
    "partner_b": {"nl": "partner B", "en": "partner B"},
    # per week
    "weeks": {"nl": "Per week", "en": "Per week"},
    "week": {"nl": "Week", "en": "Week"},
    "week_of": {"nl": "week {week} (vanaf {monday})", "en": "week {week} (from {monday})"},
    "date_not_shared": {"nl": "datum niet gedeeld", "en": "date not shared"},
    "col_timeouts": {"nl": "Time-outs", "en": "Time-outs"},
    "col_rounds": {"nl": "Rondes", "en": "Rounds"},
    "col_early": {"nl": "Te vroeg terug", "en": "Early returns"},
    "col_calls": {"nl": "Oproepen", "en": "Calls"},
    "partly": {"nl": "{value} (niet gedeeld voor {missing} van {total})",
               "en": "{value} (not shared for {missing} of {total})"},
    "col_ack": {"nl": "{n} bevestigd", "en": "{n} acknowledged"},
    "no_timeouts": {"nl": "Geen time-outs in deze periode.",
                    "en": "No time-outs in this period."},
    "chart_title": {"nl": "Time-outs per week", "en": "Time-outs per week"},
    # per time-out
    "timeouts": {"nl": "De time-outs", "en": "The time-outs"},
    "timeout_n": {"nl": "Time-out {n}", "en": "Time-out {n}"},
    "start": {"nl": "Begin", "en": "Start"},
    "length": {"nl": "Duur", "en": "Length"},
    "minutes": {"nl": "{minutes} min", "en": "{minutes} min"},
    "rounds": {"nl": "Rondes", "en": "Rounds"},
    "outcome": {"nl": "Afloop", "en": "Outcome"},
    "outcome.evaluated": {"nl": "samen teruggekeken", "en": "looked back together"},
    "outcome.handed_to_contacts": {"nl": "overgedragen aan de contactpersonen",
                                   "en": "handed to the contact persons"},
    "outcome.open": {"nl": "niet afgerond in deze periode", "en": "not finished in this period"},
    "early": {"nl": "Te vroeg terug", "en": "Early returns"},
    "calls": {"nl": "Oproepen aan contactpersonen", "en": "Calls to contact persons"},
    "calls_none": {"nl": "geen oproepen", "en": "no calls"},
    "calls_some": {"nl": "{total}, waarvan {acknowledged} bevestigd", "en": "{total}, {acknowledged} acknowledged"},
    "calls_not_ack": {"nl": "niet bevestigd: {outcomes}", "en": "not acknowledged: {outcomes}"},
    "calls_unknown_partners": {
        "nl": "alleen de oproepen van partners die toestemming gaven",
        "en": "only the calls of partners who consented"},
    "evaluation": {"nl": "Samen terugkijken", "en": "Looking back together"},
    "eval_none": {"nl": "geen antwoorden op tijd", "en": "no answers in time"},
    "eval.long_enough.True": {"nl": "lang genoeg", "en": "long enough"},
    "eval.long_enough.False": {"nl": "niet lang genoeg", "en": "not long enough"},
    "eval.more_time.True": {"nl": "iemand had meer tijd nodig", "en": "someone needed more time"},
    "eval.more_time.False": {"nl": "niemand had meer tijd nodig", "en": "nobody needed more time"},
    "eval.discuss.now": {"nl": "onderwerp meteen besproken", "en": "topic discussed right away"},
    "eval.discuss.later": {"nl": "onderwerp later besproken", "en": "topic discussed later"},
    "eval.discuss.next_session": {"nl": "onderwerp naar de therapiesessie",
                                  "en": "topic kept for the therapy session"},
    "eval.decided_by.agreed": {"nl": "samen besloten", "en": "agreed together"},
    "eval.decided_by.lead_a": {"nl": "besloten door partner A (afspraak)",
                               "en": "decided by partner A (as agreed)"},
    "eval.decided_by.lead_b": {"nl": "besloten door partner B (afspraak)",
                               "en": "decided by partner B (as agreed)"},
    "eval.decided_by.cautious": {"nl": "de voorzichtigste keuze", "en": "the more cautious choice"},
    "thermometer": {"nl": "Thermometer (spanning 0-10)", "en": "Thermometer (tension 0-10)"},
    "thermo_empty": {"nl": "geen metingen gelogd bij deze time-out",
                     "en": "no readings logged for this time-out"},
    "axis_minutes": {"nl": "minuten vanaf het begin", "en": "minutes from the start"},
    "axis_tension": {"nl": "spanning", "en": "tension"},
    "axis_start": {"nl": "begin", "en": "start"},
    # topics
    "topics": {"nl": "Onderwerpen voor de volgende therapiesessie",
               "en": "Topics for the next therapy session"},
    "topics_note": {"nl": "Alleen een aantal en een datum, nooit de inhoud.",
                    "en": "Only a count and a date, never the content."},
    "topics_kept": {"nl": "Op {day} bewaard voor de sessie van {session}; tot dan bewaard: {count}",
                    "en": "On {day} kept for the session of {session}; kept so far: {count}"},
    "session_unplanned": {"nl": "(nog geen datum)", "en": "(no date yet)"},
    "topics_none": {"nl": "Geen onderwerp bewaard in deze periode.",
                    "en": "No topic kept in this period."},
    "topics_partly": {
        "nl": "Bij {missing} van de {total} time-outs is het terugkijken niet gedeeld.",
        "en": "For {missing} of the {total} time-outs looking back was not shared."},
}


def tr(key: str, lang: Lang, **fields: object) -> str:
    entry = REPORT[key]
    return entry.get(lang, entry["en"]).format(**fields)
