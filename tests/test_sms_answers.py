"""SMS replies to check-ins and evaluation questions, through the real broker, the real Caller and
the simulated SIM7600 on a pseudo-terminal: a reply becomes an answer only when it is clearly one
option of the open question; anything else gets one short request to reply with one digit (per
question, in the partner's language) and never reaches the hub. The log gives the reason, never
the text or the number (R1, R14).

Absence ("nothing reached the hub", "no second request") is only checked after a later positive
signal that would have come after it: texts are read in the order they arrive and their answers
go out in that order, and texts to the partners leave one by one in the order they were queued."""
from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from core.texts import options
from firmware.caller.service import Caller, load_caller_config, write_caller_config
from firmware.hub.procedure import EVALUATION
from mqtt import schemas
from sim.modem import SimulatedSIM7600
from tests.conftest import HOUSEHOLD, wait_until
from tests.helpers.collect import Collect
from tests.helpers.plans import write_plan

PHONE = {"a": "+31630000001", "b": "+31630000002"}     # a reads Dutch, b English
STRANGER = "+31699999999"
CHECKIN = ("checkin", "checkin.how_do_you_feel", 3)
LONG_ENOUGH = ("evaluation", "evaluation.long_enough", 2)
DISCUSS = ("evaluation", "evaluation.discuss", 3)
PLEASE_REPLY = {("nl", 3): "Antwoord met één cijfer: 1, 2 of 3.",
                ("nl", 2): "Antwoord met één cijfer: 1 of 2.",
                ("en", 3): "Please reply with one digit: 1, 2 or 3.",
                ("en", 2): "Please reply with one digit: 1 or 2."}


@pytest.fixture
def sim():
    s = SimulatedSIM7600(time_scale=0.02)
    yield s
    s.close()


@pytest.fixture
def config(broker, sim, tmp_path):
    return load_caller_config(write_caller_config(tmp_path / "caller.toml", {
        "household": HOUSEHOLD, "code_word": "Zonnebloem",
        "credentials": f"{tmp_path}/broker/credentials/caller.json",
        "state_dir": f"{tmp_path}/caller", "port": broker.port, "modem_port": sim.port,
        "health_every_seconds": 60, "gnss_port": 0, "clock_flag": f"{tmp_path}/clock-flag",
        "plan": write_plan(tmp_path / "household.toml", HOUSEHOLD,
                           b={"sms_checkins": True, "language": "en"}),   # a: nl, by SMS
        "partners": {"a": {"number": PHONE["a"]}, "b": {"number": PHONE["b"]}}}))


def start_caller(config, bus) -> Caller:
    """Subscribed, and with the modem open: a text arriving before that is announced to nobody
    (on a real modem it waits on the SIM until the next start)."""
    c = Caller(config, bus("caller", start=False)).start()
    assert c.bus.wait_subscribed(5) and wait_until(lambda: c.modem is not None, 5)
    return c


@pytest.fixture
def caller(config, bus):
    c = start_caller(config, bus)
    yield c
    c.stop()


@pytest.fixture
def hub(bus):
    h = bus("hub")
    inputs = Collect()
    h.on("partner/{partner}/input", inputs)
    assert h.wait_subscribed(5)
    h.inputs = inputs
    return h


def ask(hub, sim, partner, question=CHECKIN, q=None) -> uuid.UUID:
    """The hub asks; once the question went out as a text, the caller holds it as open."""
    kind, key, n = question
    q = q or uuid.uuid4()
    sent = len(sim.sent_sms)
    hub.publish(f"partner/{partner}/prompt", schemas.PartnerPrompt(
        question_id=q, kind=kind, key=key, options=n))
    assert wait_until(lambda: len(sim.sent_sms) > sent
                      and sim.sent_sms[-1].number == PHONE[partner], 5), "the question did not go out"
    return q


def answers(hub, q) -> list[int]:
    with hub.inputs.lock:
        return [m.payload.choice for m in hub.inputs if m.payload.question_id == q]


def requests_to_reply(sim, partner) -> list[str]:
    return [s.text for s in sim.sent_sms
            if s.number == PHONE[partner] and s.text in PLEASE_REPLY.values()]


def all_texts_sent(hub, sim, partner) -> None:
    """Every text queued so far has left: a notice asked now goes out after them."""
    sent = len(sim.sent_sms)
    hub.publish(f"partner/{partner}/prompt", schemas.PartnerPrompt(
        question_id=uuid.uuid4(), kind="notice", key="notice.please_leave"))
    notice = {"a": "vertrekken", "b": "leave"}[partner]
    assert wait_until(lambda: any(s.number == PHONE[partner] and notice in s.text
                                  for s in sim.sent_sms[sent:]), 5)


def answered(hub, sim, partner, q, text, choice) -> None:
    """A valid reply reaches the hub; every text before it was read first."""
    sim.inject_sms(PHONE[partner], text)
    assert wait_until(lambda: choice in answers(hub, q), 5), f"{text!r} was not passed on"


ACCEPTED = [
    # partner, question, reply, the option it is
    ("a", CHECKIN, "1", 1),
    ("a", CHECKIN, " 2 ", 2),
    ("a", CHECKIN, "3.", 3),
    ("a", CHECKIN, "1)", 1),
    ("a", CHECKIN, "1 rustig", 1),
    ("a", CHECKIN, "1 calm", 1),                      # the other language's words
    ("a", CHECKIN, "2 beetje gespannen", 2),          # without the article
    ("a", CHECKIN, "2 een beetje gespannën", 2),      # with it, and an accent (UCS2)
    ("a", CHECKIN, "3  Niet   Rustig.", 3),
    ("a", CHECKIN, "rustig", 1),                      # the words alone
    ("a", CHECKIN, "niet rustig", 3),                 # is not "rustig"
    ("b", CHECKIN, "NOT CALM", 3),
    ("b", CHECKIN, "2) a bit tense", 2),
    ("b", CHECKIN, "bit tense.", 2),
    ("b", CHECKIN, "2 beetje gespannen", 2),          # b writes Dutch
    ("a", LONG_ENOUGH, "2", 2),
    ("a", LONG_ENOUGH, "nee", 2),
    ("b", LONG_ENOUGH, "1 yes", 1),
    ("a", DISCUSS, "3 in de volgende therapiesessie", 3),
    ("b", DISCUSS, "later", 2),
]


def test_a_clear_reply_is_that_option_of_the_open_question(sim, caller, hub):
    for partner, question, text, choice in ACCEPTED:
        q = ask(hub, sim, partner, question)
        sim.inject_sms(PHONE[partner], text)
        assert wait_until(lambda q=q: answers(hub, q), 5), f"{text!r} was not passed on"
        got = hub.inputs[-1]
        assert (got.partner, answers(hub, q), got.payload.via) == (partner, [choice], "sms"), text
    for partner in ("a", "b"):
        all_texts_sent(hub, sim, partner)
        assert requests_to_reply(sim, partner) == [], "a clear reply was asked to be repeated"


REFUSED = [
    # partner, question, reply, why (the reason in the log)
    ("a", CHECKIN, "om 21:30", "not one clear answer"),
    ("a", CHECKIN, "12", "not one clear answer"),
    ("a", CHECKIN, "1 of 2", "not one clear answer"),
    ("a", CHECKIN, "ja", "not one clear answer"),
    ("a", CHECKIN, "", "empty"),
    ("a", CHECKIN, "Ben om 22:15 thuis, heb 2 keer gebeld met 1 vriend", "not one clear answer"),
    ("a", CHECKIN, "gespannen", "not one clear answer"),              # part of option 2's words
    ("a", CHECKIN, "rustig 1", "not one clear answer"),
    ("a", CHECKIN, "1 niet rustig", "a digit and another answer's words"),
    ("a", CHECKIN, "4", "a digit that is not an answer to this question"),
    ("b", CHECKIN, "calm down", "not one clear answer"),
    ("b", LONG_ENOUGH, "3", "a digit that is not an answer to this question"),
    ("a", LONG_ENOUGH, "3 niet rustig", "a digit that is not an answer to this question"),
]


def test_an_unclear_reply_gets_one_request_in_the_partners_language_and_never_reaches_the_hub(
        sim, caller, hub, caplog):
    caplog.set_level(logging.DEBUG)
    for partner, question, text, why in REFUSED:
        lang = caller.cfg.partners[partner].language
        q = ask(hub, sim, partner, question)
        before, logged = len(requests_to_reply(sim, partner)), len(caplog.records)
        sim.inject_sms(PHONE[partner], text)
        assert wait_until(lambda p=partner, n=before: len(requests_to_reply(sim, p)) > n, 5), \
            f"no request to reply after {text!r}"
        assert requests_to_reply(sim, partner)[before:] == [PLEASE_REPLY[lang, question[2]]], text
        assert f"caller: SMS from partner {partner} not passed on ({why}); asked to reply with one digit" \
            in [r.getMessage() for r in caplog.records[logged:]], text
        # the valid answer after the request goes through, and it is the only one for q
        answered(hub, sim, partner, q, "1", 1)
        assert answers(hub, q) == [1], f"{text!r} reached the hub"
    for partner in ("a", "b"):
        all_texts_sent(hub, sim, partner)
        assert len(requests_to_reply(sim, partner)) == sum(p == partner for p, *_ in REFUSED)
    # the log says why, never what was written or by which number (R1, R14)
    for _, _, text, _ in REFUSED:
        if len(text) > 4:
            assert text not in caplog.text
    for number in PHONE.values():
        assert number[1:] not in caplog.text and number[-9:] not in caplog.text


def test_one_request_per_question_also_when_asked_again_and_after_a_restart(
        sim, config, bus, hub, caplog):
    caplog.set_level(logging.INFO)
    def refused_again(n):      # the caller read the text and did not ask again (a positive sign)
        return wait_until(lambda: caplog.text.count("already asked once to reply with one digit") == n, 5)
    caller = start_caller(config, bus)
    try:
        q = ask(hub, sim, "a")
        sim.inject_sms(PHONE["a"], "om 21:30")
        assert wait_until(lambda: len(requests_to_reply(sim, "a")) == 1, 5)
        sim.inject_sms(PHONE["a"], "ja")                  # say, an automatic reply to our request
        sim.inject_sms(PHONE["a"], "")
        assert refused_again(2)
        all_texts_sent(hub, sim, "a")
        assert len(requests_to_reply(sim, "a")) == 1, "a second request for the same question"
        # the same question asked again (the end check-in repeats its prompt): still one request
        ask(hub, sim, "a", q=q)
        sim.inject_sms(PHONE["a"], "niet")
        assert refused_again(3)
        all_texts_sent(hub, sim, "a")
        assert len(requests_to_reply(sim, "a")) == 1, "a second request after the question was repeated"
    finally:
        caller.stop()
    caller = start_caller(config, bus)
    try:
        sim.inject_sms(PHONE["a"], "12")
        assert refused_again(4)
        all_texts_sent(hub, sim, "a")
        assert len(requests_to_reply(sim, "a")) == 1, "a second request after a restart"
        answered(hub, sim, "a", q, "2", 2)
        assert answers(hub, q) == [2], "an unclear reply reached the hub"
        # a new question: one request again, then its answer
        q2 = ask(hub, sim, "a")
        sim.inject_sms(PHONE["a"], "1 of 2")
        assert wait_until(lambda: len(requests_to_reply(sim, "a")) == 2, 5)
        answered(hub, sim, "a", q2, "1", 1)
        assert answers(hub, q2) == [1]
    finally:
        caller.stop()


def test_no_open_question_a_stranger_or_an_answered_question_get_no_answer_and_no_request(
        sim, caller, hub, caplog):
    caplog.set_level(logging.INFO)
    sim.inject_sms(PHONE["a"], "1")                       # nothing was asked yet
    assert wait_until(lambda: "partner a not passed on: no open question" in caplog.text, 5)
    q = ask(hub, sim, "a")
    sim.inject_sms(STRANGER, "om 21:30")                  # not a partner's number
    sim.inject_sms(STRANGER, "2")
    answered(hub, sim, "a", q, "3", 3)
    assert [m.payload.question_id for m in hub.inputs] == [q] and answers(hub, q) == [3]
    assert caplog.text.count("SMS from an unknown number ignored and deleted") == 2
    sim.inject_sms(PHONE["a"], "dank je")                 # after the answer: no request to reply
    answered(hub, sim, "a", q, "2", 2)                    # a changed answer goes on; the hub decides
    all_texts_sent(hub, sim, "a")
    assert requests_to_reply(sim, "a") == []
    assert "no request to reply again" in caplog.text
    assert all(s.number in PHONE.values() for s in sim.sent_sms), "a text to a stranger"
    assert [m.payload.question_id for m in hub.inputs] == [q, q]


def test_a_caller_file_from_before_keeps_its_open_question_and_takes_digits(sim, config, bus, hub):
    """A prompt remembered by the caller before keys and options were kept: the question stays
    open, its answers are the digits 1-3 (no words are known for it)."""
    q = uuid.uuid4()
    Path(config.state_dir).mkdir(parents=True)
    old = sqlite3.connect(Path(config.state_dir) / "calls.sqlite3")
    old.execute("CREATE TABLE prompts (partner TEXT PRIMARY KEY, question_id TEXT NOT NULL, "
                "at REAL NOT NULL)")
    old.execute("INSERT INTO prompts VALUES ('a', ?, ?)", (str(q), time.time()))
    old.commit()
    old.close()
    caller = start_caller(config, bus)
    try:
        sim.inject_sms(PHONE["a"], "rustig")
        assert wait_until(lambda: requests_to_reply(sim, "a") == [PLEASE_REPLY["nl", 3]], 5)
        answered(hub, sim, "a", q, "3.", 3)
        assert answers(hub, q) == [3]
    finally:
        caller.stop()


def test_every_question_lists_its_answers_words_in_both_languages():
    """The words an SMS may answer with come from the question's text; a reworded text that no
    longer lists them would silently leave only the digits."""
    for key, n in (("checkin.how_do_you_feel", 3), *EVALUATION):
        for lang in ("nl", "en"):
            assert sorted(options(key, lang)) == list(range(1, n + 1)), (key, lang)


# -- sharing with the care worker by SMS (docs/care.md): withdraw consent, read the access log --

@pytest.fixture
def share(bus, tmp_path):
    """The consent filter (the `bridge` role) on the same broker: it applies a partner's request
    and answers it; with no bridge to an organisation here, nothing is sent anywhere."""
    import pyrage

    from firmware.share.filter import ConsentFilter
    from mqtt.shared import CATEGORIES, ConsentSet
    f = ConsentFilter(bus("bridge", start=False), tmp_path / "share",
                      base=ConsentSet(a=frozenset(CATEGORIES), b=frozenset(CATEGORIES)),
                      retention_days=90, key=pyrage.x25519.Identity.generate().to_public()).start()
    assert f.bus.wait_subscribed(5)
    yield f
    f.stop()


def texts_to(sim, partner) -> list[str]:
    return [s.text for s in sim.sent_sms if s.number == PHONE[partner]]


def text_arrives(sim, partner, part: str) -> str:
    assert wait_until(lambda: any(part in t for t in texts_to(sim, partner)), 5), \
        f"no text with {part!r} to partner {partner}: {texts_to(sim, partner)}"
    return next(t for t in texts_to(sim, partner) if part in t)


def test_a_partner_withdraws_by_sms_from_their_own_number_only(sim, caller, share, caplog):
    from mqtt.shared import CATEGORIES
    caplog.set_level(logging.INFO)
    everything = frozenset(CATEGORIES)
    sim.inject_sms(PHONE["a"], "STOP DELEN bellen")
    assert text_arrives(sim, "a", "ingetrokken voor: bellen.")   # a reads Dutch
    assert share.consent().of("a") == everything - {"call"}
    assert share.consent().of("b") == everything                 # b's own consent: untouched
    # b's text withdraws b's consent, never a's; the confirmation goes to b only (in English)
    sim.inject_sms(PHONE["b"], "Stop sharing.")
    assert text_arrives(sim, "b", "withdrawn for: procedure, checkin, calls, sound, presence, "
                                  "evaluation.")
    assert share.consent().of("b") == frozenset()
    assert share.consent().of("a") == everything - {"call"}
    assert not any("withdrawn" in t for t in texts_to(sim, "a"))
    # a stranger's text changes nothing; a's access-log request after it is answered first
    before = share.consent()
    sim.inject_sms(STRANGER, "STOP DELEN")
    sim.inject_sms(PHONE["a"], "logboek")
    log_text = text_arrives(sim, "a", "Toegangslog:")
    assert share.consent() == before
    assert [s for s in sim.sent_sms if s.number == STRANGER] == []
    assert "SMS from an unknown number ignored and deleted" in caplog.text
    # the log names roles, newest first: b's withdrawal, then a's
    assert "partner B: toestemming ingetrokken (alles)" in log_text
    assert "partner A: toestemming ingetrokken (bellen)" in log_text
    assert log_text.index("partner B") < log_text.index("partner A")
    assert len(log_text) <= 160


def test_both_partners_read_the_access_log_by_sms_and_never_the_others_answers(
        sim, caller, share, hub, tmp_path):
    from firmware.share import access_log
    access_log.record(tmp_path / "share", "installer", "report", "2026-11-01")
    access_log.record(tmp_path / "share", "worker.w17", "org.report", allowed=False)
    # a answers a check-in by SMS: that answer is a's alone
    q = ask(hub, sim, "a", CHECKIN)
    answered(hub, sim, "a", q, "3 niet rustig", 3)
    sim.inject_sms(PHONE["a"], "LOGBOEK")
    sim.inject_sms(PHONE["b"], "access log")
    nl = text_arrives(sim, "a", "Toegangslog:")
    en = text_arrives(sim, "b", "Access log:")
    assert "zorgverlener w17: rapport bekeken, geweigerd" in nl and "installateur: rapport" in nl
    assert "care worker w17: report viewed, refused" in en and "installer: report" in en
    for text in texts_to(sim, "b"):          # nothing of a's answer reaches b, in any wording
        for word in ("rustig", "calm", "tense", "gespannen", " 3 "):
            assert word not in text, text


def test_an_unclear_sharing_request_changes_nothing_and_gets_the_words_back(
        sim, caller, share, caplog):
    caplog.set_level(logging.INFO)
    before = share.consent()
    sim.inject_sms(PHONE["b"], "stop sharing everything but the calls")
    assert text_arrives(sim, "b", "Not understood. Send STOP SHARING")
    assert "(a word after STOP that is not a category)" in caplog.text
    assert "everything but" not in caplog.text              # the reason, never the text
    sim.inject_sms(PHONE["b"], "ACCESS LOG")                 # answered after the unclear one
    assert text_arrives(sim, "b", "Access log:")
    assert share.consent() == before
