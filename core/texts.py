"""What partners read or hear, by key, in Dutch and English. Neutral wording, no names (R14).
The bus carries only the keys; each device says them in its partner's language."""
from __future__ import annotations

import re

TEXTS: dict[str, dict[str, str]] = {
    "checkin.how_do_you_feel": {
        "nl": "Hoe voel je je nu? 1 rustig, 2 een beetje gespannen, 3 niet rustig",
        "en": "How do you feel now? 1 calm, 2 a bit tense, 3 not calm"},
    "reminder.calming_task": {
        "nl": "Tijd voor iets dat je rustig maakt: {task}",
        "en": "Time for something that calms you: {task}"},
    "reminder.calming_task_generic": {
        "nl": "Tijd voor iets dat je rustig maakt, zoals je hebt afgesproken.",
        "en": "Time for something that calms you, as you agreed."},
    "notice.returned_early": {
        "nl": "De time-out is nog niet voorbij. Ga alsjeblieft weer weg tot de tijd om is.",
        "en": "The time-out is not over yet. Please leave again until the time is up."},
    "notice.leave_again": {
        "nl": "De time-out gaat verder. Ga alsjeblieft weer weg tot de tijd om is.",
        "en": "The time-out goes on. Please leave again until the time is up."},
    "notice.please_leave": {
        "nl": "Het is tijd om te vertrekken voor de time-out.",
        "en": "It is time to leave for the time-out."},
    "notice.one_of_you_leave": {
        "nl": "Er is nog niemand vertrokken. Een van jullie gaat nu weg, zoals afgesproken.",
        "en": "Nobody has left yet. One of you leaves now, as you agreed."},
    "notice.separate_indoors": {
        "nl": "Ga naar jullie afgesproken plek in huis voor de time-out.",
        "en": "Go to your agreed place in the home for the time-out."},
    "notice.may_meet_again": {
        "nl": "Jullie zijn allebei rustig. Jullie mogen elkaar weer zien.",
        "en": "You are both calm. You may meet again."},
    "notice.consider_overnight_elsewhere": {
        "nl": "Overweeg vannacht ergens anders te slapen, zoals afgesproken.",
        "en": "Consider staying somewhere else tonight, as agreed."},
    "notice.handed_to_contacts": {
        "nl": "De time-out telt niet verder. De hub heeft gevraagd je contactpersonen te bellen.",
        "en": "The time-out is no longer counted. The hub has asked for your contact persons to be called."},
    "notice.ended_no_calls": {
        "nl": "De time-out telt niet verder. Neem de tijd die je nodig hebt; je kunt zelf je "
              "contactpersoon bellen.",
        "en": "The time-out is no longer counted. Take the time you need; you can call your "
              "contact person yourself."},
    "notice.discuss_topic_now": {
        "nl": "Jullie spraken af het onderwerp nu te bespreken. Neem de tijd, om de beurt.",
        "en": "You agreed to discuss the topic now. Take your time, one at a time."},
    "notice.take_more_time": {
        "nl": "Iemand heeft nog meer tijd nodig. Bespreek het onderwerp nog niet.",
        "en": "Someone needs more time. Do not discuss the topic yet."},
    "evaluation.long_enough": {
        "nl": "Duurde de time-out lang genoeg? 1 ja, 2 nee",
        "en": "Did the time-out last long enough? 1 yes, 2 no"},
    "evaluation.more_time": {
        "nl": "Heeft iemand nog meer tijd nodig? 1 nee, 2 ja",
        "en": "Does someone need more time? 1 no, 2 yes"},
    "evaluation.discuss": {
        "nl": "Het onderwerp bespreken? 1 nu, 2 later, 3 in de volgende therapiesessie",
        "en": "Discuss the topic? 1 now, 2 later, 3 at the next therapy session"},
    # the caller's answer to an SMS reply it cannot read as one option (once per question)
    "sms.reply_one_digit": {
        "nl": "Antwoord met één cijfer: {choices}.",
        "en": "Please reply with one digit: {choices}."},
    # a partner's own SMS to the hub about sharing with the care worker (docs/care.md); GSM
    # characters only, so a text stays one SMS of 160
    "sms.share_withdrawn": {
        "nl": "Je toestemming om te delen met de zorgverlener is ingetrokken voor: {categories}. "
              "Opnieuw geven gaat via de installateur.",
        "en": "Your consent to share with the care worker is withdrawn for: {categories}. "
              "To give it again, ask the installer."},
    "sms.share_unclear": {
        "nl": "Niet begrepen. Stuur STOP DELEN, of STOP DELEN met een van: {words}. "
              "LOGBOEK toont het toegangslog.",
        "en": "Not understood. Send STOP SHARING, or STOP SHARING with one of: {words}. "
              "ACCESS LOG shows the access log."},
    "sms.access_log": {"nl": "Toegangslog: {entries}", "en": "Access log: {entries}"},
    "sms.access_log_empty": {"nl": "Toegangslog: nog niets.", "en": "Access log: nothing yet."},
}

# The consent categories (mqtt/shared.py) as a partner names them in an SMS, per language; the
# first word is the one the hub writes back.
SHARE_CATEGORY_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "procedure": {"nl": ("procedure", "timeout", "time-out"), "en": ("procedure", "timeout", "time-out")},
    "checkin": {"nl": ("checkin", "check-in", "incheck"), "en": ("checkin", "check-in")},
    "call": {"nl": ("bellen", "oproepen"), "en": ("calls", "call")},
    "sensing": {"nl": ("geluid", "meten"), "en": ("sound", "sensing")},
    "presence": {"nl": ("aanwezigheid",), "en": ("presence",)},
    "evaluation": {"nl": ("evaluatie",), "en": ("evaluation",)},
}
# The access log as a partner reads it by SMS: roles, never names (R14)
ACCESS_WHO: dict[str, dict[str, str]] = {
    "installer": {"nl": "installateur", "en": "installer"},
    "a": {"nl": "partner A", "en": "partner A"}, "b": {"nl": "partner B", "en": "partner B"},
    "worker": {"nl": "zorgverlener", "en": "care worker"},
}
ACCESS_ACTIONS: dict[str, dict[str, str]] = {
    "report": {"nl": "rapport", "en": "report"},
    "export": {"nl": "export", "en": "export"},
    "consent.withdraw": {"nl": "toestemming ingetrokken", "en": "consent withdrawn"},
    "consent.give": {"nl": "toestemming gegeven", "en": "consent given"},
    "bridge": {"nl": "koppeling gewijzigd", "en": "link changed"},
    "reset": {"nl": "reset", "en": "reset"},
    "org.report": {"nl": "rapport bekeken", "en": "report viewed"},
    "org.export": {"nl": "export", "en": "export"},
    "org.list": {"nl": "lijst bekeken", "en": "list viewed"},
    "org.wipe": {"nl": "gewist", "en": "wiped"},
    "org.consent": {"nl": "toestemming verwerkt", "en": "consent applied"},
    "org.bridge": {"nl": "koppeling", "en": "link"},
}
ACCESS_REFUSED = {"nl": "geweigerd", "en": "refused"}
SHARE_ALL = {"nl": "alles", "en": "all"}     # every category, in a line of the access log

# What a contact person hears and reads (R8, R14): which household, that a time-out escalated,
# please get in touch. No names, no details of the conflict.
CALL_MESSAGE = {
    "nl": ("Dit is een automatisch bericht van de time-out hub van huishouden {code}. "
           "Een time-out is geëscaleerd. Wilt u contact opnemen? Druk op 1 als u contact opneemt."),
    "en": ("This is an automatic message from the time-out hub of household {code}. "
           "A time-out has escalated. Please get in touch. Press 1 if you will get in touch."),
}
CALL_SMS = {
    "nl": ("Time-out hub, huishouden {code}: een time-out is geëscaleerd. Wilt u contact opnemen? "
           "(automatisch bericht)"),
    "en": ("Time-out hub, household {code}: a time-out has escalated. Please get in touch. "
           "(automatic message)"),
}

PHASES: dict[str, dict[str, str]] = {
    "monitoring": {"nl": "rust", "en": "quiet"},   # the sensing light says whether it listens
    "suggestion": {"nl": "voorstel: neem een pauze", "en": "suggestion: take a break"},
    "leaving": {"nl": "time-out gestart — vertrekken", "en": "time-out started — leaving"},
    "timeout": {"nl": "time-out", "en": "time-out"},
    "extended": {"nl": "time-out verlengd", "en": "time-out extended"},
    "checkin": {"nl": "check-in: hoe gaat het?", "en": "check-in: how are you?"},
    "evaluation": {"nl": "samen terugkijken", "en": "looking back together"},
}


def say(key: str, lang: str, **fields: str) -> str:
    entry = TEXTS.get(key)
    if entry is None:
        return key
    return entry.get(lang, entry["en"]).format(**fields)


def prompt_text(key: str, lang: str, task: int | None, calming_tasks: list[str]) -> str:
    """What a partner reads for a prompt: a calming-task reminder names that partner's own task
    (by its number in their list), or says it generically when the number is unknown."""
    if key == "reminder.calming_task":
        if task and task <= len(calming_tasks):
            return say(key, lang, task=calming_tasks[task - 1])
        key = "reminder.calming_task_generic"
    return say(key, lang)


def options(key: str, lang: str) -> dict[int, str]:
    """The answers a question offers, as its text lists them after the question mark:
    "Hoe voel je je nu? 1 rustig, 2 een beetje gespannen, 3 niet rustig" gives
    {1: "rustig", 2: "een beetje gespannen", 3: "niet rustig"}. Empty for a text that is not a
    question with numbered answers (a notice, a reminder, an unknown key)."""
    _, mark, tail = TEXTS.get(key, {}).get(lang, "").rpartition("?")
    found: dict[int, str] = {}
    for part in tail.split(",") if mark else []:
        m = re.fullmatch(r"\s*([1-9])\s+(\S.*?)\s*", part)
        if m is None:
            return {}
        found[int(m.group(1))] = m.group(2)
    return found


def digit_choices(n: int, lang: str) -> str:
    """"1, 2 of 3" / "1 or 2": the digits a question with n answers takes, in a sentence."""
    digits = [str(i) for i in range(1, n + 1)]
    if len(digits) < 2:
        return "".join(digits)
    return f"{', '.join(digits[:-1])} {'of' if lang == 'nl' else 'or'} {digits[-1]}"
