"""The caller service through the real broker and a simulated SIM7600 on a pseudo-terminal: the
escalation ladder, its persistence across a kill -9, SMS check-ins, health, and that no number
ever reaches the bus."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from firmware.caller.service import Caller, CallerConfigError, load_caller_config, write_caller_config
from mqtt import schemas
from sim.modem import Callee, SimulatedSIM7600
from tests.conftest import HOUSEHOLD, wait_until
from tests.helpers.collect import Collect
from tests.helpers.plans import write_plan

ROOT = Path(__file__).resolve().parents[1]
SCALE = 0.02
NUMBERS = {"a": ["+31610000001", "+31610000002"], "b": ["+31620000001"]}
PARTNER_A = "+31630000001"


def write_config(tmp_path, broker, sim, mode=0o600, time_scale=SCALE, health_every=1,
                 dial_attempts=4) -> Path:
    path = write_caller_config(tmp_path / "caller.toml", {
        "household": HOUSEHOLD, "code_word": "Zonnebloem",
        "credentials": f"{tmp_path}/broker/credentials/caller.json",
        "state_dir": f"{tmp_path}/caller", "port": broker.port, "modem_port": sim.port,
        "ring_seconds": 35, "rounds": 2, "message_repeats": 2,
        "health_every_seconds": health_every, "dial_attempts": dial_attempts,
        "time_scale": time_scale, "gnss_port": 0, "clock_flag": f"{tmp_path}/clock-flag",
        "plan": write_plan(tmp_path / "household.toml", HOUSEHOLD),   # a on SMS, b a wearable
        "partners": {"a": {"number": PARTNER_A}},
        "contacts": {p: [{"number": n, "language": "nl" if i == 1 else "en"}
                         for i, n in enumerate(nums, 1)] for p, nums in NUMBERS.items()}})
    os.chmod(path, mode)
    return path


@pytest.fixture
def sim():
    s = SimulatedSIM7600(time_scale=SCALE)
    yield s
    s.close()


@pytest.fixture
def hubside(bus):
    hub = bus("hub")
    results = Collect(payloads=True)
    inputs = Collect()
    hub.on("call/result", results)
    hub.on("partner/{partner}/input", inputs)
    assert hub.wait_subscribed(5)
    return hub, results, inputs


@pytest.fixture
def caller(broker, bus, sim, tmp_path):
    cfg = load_caller_config(write_config(tmp_path, broker, sim))
    c = Caller(cfg, bus("caller", start=False)).start()
    assert c.bus.wait_subscribed(5)
    yield c
    c.stop()


def request(hub, partner="a", reason="not_calm", contact=None):
    r = schemas.CallRequest(partner=partner, reason=reason, contact=contact)
    hub.publish("call/request", r)
    return r


def final(results, r):
    done = [x for x in results if x.request_id == r.id and x.final]
    return done[0] if done else None


def test_ladder_goes_down_the_contacts_until_one_presses_1(sim, caller, hubside, caplog):
    caplog.set_level(logging.DEBUG)
    hub, results, _ = hubside
    sim.expect(Callee("busy"), Callee("no_answer"), Callee("answer_no_ack"),
               Callee("answer_ack"), Callee("answer_ack"))
    r = request(hub)
    assert wait_until(lambda: final(results, r) is not None, 30)
    steps = [(x.step, x.round, x.contact, x.outcome) for x in results if not x.final]
    assert steps == [("dial", 1, 1, "busy"), ("dial", 1, 2, "no_answer"),
                     ("dial", 2, 1, "answered_no_ack"), ("dial", 2, 2, "acknowledged")]
    assert final(results, r).outcome == "acknowledged"
    assert [n for _, n in sim.dialed] == NUMBERS["a"] * 2      # and nobody after the acknowledgement
    ctts = [c for _, c in sim.commands if c.startswith("AT+CTTS")]
    assert ctts, "the message was not spoken"
    assert "…01" in caplog.text and "…02" in caplog.text      # the log names contacts so
    for n in NUMBERS["a"]:
        assert n[1:] not in caplog.text, "a full number in the log"


def test_nobody_acknowledges_two_rounds_then_sms_to_each(sim, caller, hubside):
    hub, results, _ = hubside
    sim.default = Callee("answer_no_ack")
    r = request(hub)
    assert wait_until(lambda: final(results, r) is not None, 30)
    assert final(results, r).outcome == "exhausted"
    assert [x.outcome for x in results if not x.final] == ["answered_no_ack"] * 4 + ["sms_sent"] * 2
    assert [s.number for s in sim.sent_sms] == NUMBERS["a"]
    nl, en = sim.sent_sms[0].text, sim.sent_sms[1].text
    assert "Zonnebloem" in nl and "geëscaleerd" in nl and sim.sent_sms[0].ucs2
    assert "household Zonnebloem" in en


def test_a_failed_sms_is_logged_without_the_number(sim, caller, caplog):
    caplog.set_level(logging.DEBUG)
    assert wait_until(lambda: caller.modem is not None, 10)
    sim.sms_error = True                    # the network refuses the message
    caller._outgoing.put((PARTNER_A, "Hoe voel je je?"))
    assert wait_until(lambda: "SMS to …01 failed" in caplog.text, 10)
    assert "+CMS ERROR: 500" in caplog.text
    assert PARTNER_A[1:] not in caplog.text


def test_cme_error_and_a_modem_reset_mid_ladder_move_on(sim, caller, hubside):
    hub, results, _ = hubside
    # refused on each of its 4 tries, contact 1's step is failed; then contact 2's call is cut
    # by a modem reset (it rang: not tried again), and contact 1 answers in round 2
    sim.expect(*[Callee("cme_error")] * 4, Callee("reset_mid_call"), Callee("answer_ack"))
    r = request(hub)
    assert wait_until(lambda: final(results, r) is not None, 30)
    outcomes = [(x.outcome, x.error) for x in results if not x.final]
    assert outcomes[0][0] == "failed" and "+CME ERROR: 30" in outcomes[0][1]
    assert "(4 tries)" in outcomes[0][1]
    assert "31610000001" not in (outcomes[0][1] or ""), "a number reached the bus"
    assert outcomes[1][0] == "failed" and "reset" in outcomes[1][1]
    assert outcomes[2][0] == "acknowledged" and sim.resets == 1


def test_a_test_call_reaches_only_that_contact(sim, caller, hubside):
    hub, results, _ = hubside
    sim.expect(Callee("answer_ack"))
    r = request(hub, partner="b", reason="test", contact=1)
    assert wait_until(lambda: final(results, r) is not None, 20)
    assert final(results, r).outcome == "acknowledged" and [n for _, n in sim.dialed] == NUMBERS["b"]


def test_sms_checkin_reply_from_the_partner_becomes_their_answer_and_strangers_are_ignored(
        sim, caller, hubside, caplog):
    caplog.set_level(logging.INFO)
    hub, _, inputs = hubside
    q = uuid.uuid4()
    hub.publish("partner/a/prompt", schemas.PartnerPrompt(question_id=q, kind="checkin",
                                                          key="checkin.how_do_you_feel", options=3))
    assert wait_until(lambda: len(sim.sent_sms) == 1, 5)
    assert sim.sent_sms[0].number == PARTNER_A and "1 rustig" in sim.sent_sms[0].text
    delivered = caller.bus.stats["delivered"]
    hub.publish("partner/b/prompt", schemas.PartnerPrompt(question_id=uuid.uuid4(), kind="checkin",
                                                          key="checkin.how_do_you_feel", options=3))
    assert wait_until(lambda: caller.bus.stats["delivered"] == delivered + 1, 5)  # b's handled
    # a notice to a after it: texts leave one by one in the order asked, so once a's is sent,
    # a text for b would have gone before it
    hub.publish("partner/a/prompt", schemas.PartnerPrompt(question_id=uuid.uuid4(), kind="notice",
                                                          key="notice.please_leave"))
    assert wait_until(lambda: any("vertrekken" in s.text for s in sim.sent_sms), 5)
    assert [s.number for s in sim.sent_sms] == [PARTNER_A] * 2, \
        "partner b has no SMS check-ins in the caller's file"
    sim.inject_sms("+31699999999", "1")                     # a stranger
    sim.inject_sms(PARTNER_A, "2 een beetje gespannën")     # UCS2 (ë)
    assert wait_until(lambda: len(inputs) >= 1, 5)
    m = inputs[0]
    assert m.partner == "a" and m.payload.choice == 2 and m.payload.question_id == q
    assert m.payload.via == "sms"
    # the stranger's text came first (texts are read in the order they arrive) and was dropped
    assert "SMS from an unknown number ignored and deleted" in caplog.text
    assert wait_until(lambda: sim.inbox == {}, 3), "messages must be deleted from the SIM"
    assert len(inputs) == 1


def test_health_faults_are_published_and_cleared(sim, caller, bus):
    hub = bus("hub", state="hub2")
    health = Collect(payloads=True)
    hub.on("caller/health", health)
    assert hub.wait_subscribed(5)
    sim.sim_present = False
    def modem_faults():
        return [f.code for f in health[-1].faults if f.code.startswith("modem.")] if health else None
    assert wait_until(lambda: modem_faults() == ["modem.no_sim"], 5)
    sim.sim_present = True
    sim.registration = 2
    assert wait_until(lambda: modem_faults() == ["modem.no_network"], 5)
    sim.registration = 1
    assert wait_until(lambda: modem_faults() == [], 5)
    # no NTP and no GNSS here: the clock is reported as not trusted
    assert "clock.unsynchronised" in [f.code for f in health[-1].faults]


def test_no_phone_number_ever_reaches_the_bus(broker, sim, caller, bus):
    """Everything the caller publishes (results, inputs, health, availability), read by the hub."""
    hub = bus("hub")
    seen = Collect()
    for topic in ("call/result", "partner/{partner}/input", "caller/health", "caller/available"):
        hub.on(topic, seen)
    assert hub.wait_subscribed(5)
    sim.expect(*[Callee("cme_error")] * 4, Callee("reset_mid_call"))
    sim.default = Callee("answer_no_ack")
    request(hub)
    assert wait_until(lambda: any(getattr(m.payload, "final", False) for m in seen), 30)
    hub.publish("partner/a/prompt", schemas.PartnerPrompt(question_id=uuid.uuid4(), kind="checkin",
                                                          key="checkin.how_do_you_feel", options=3))
    assert wait_until(lambda: sim.sent_sms, 5)
    sim.inject_sms(PARTNER_A, "1")
    assert wait_until(lambda: any(m.topic == "partner/a/input" for m in seen), 5)
    blob = " ".join(m.payload if isinstance(m.payload, str) else m.payload.model_dump_json()
                    for m in seen)
    assert "+CME ERROR: 30" in blob            # the error is there, the dialled number is not
    for n in NUMBERS["a"] + NUMBERS["b"] + [PARTNER_A]:
        assert n[1:] not in blob and n[-9:] not in blob, n


def test_config_with_numbers_must_be_private(tmp_path, broker, sim):
    path = write_config(tmp_path, broker, sim, mode=0o644)
    with pytest.raises(CallerConfigError, match="chmod 600"):
        load_caller_config(path)
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "caller", "--config", str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "must be private" in r.stderr


def test_after_kill_9_the_ladder_continues_and_calls_nobody_twice_for_a_step(tmp_path, broker, bus, sim):
    """Issue 20, harm 3: the caller is killed mid-call and, as a real modem does, the simulator
    keeps that call up. The restarted caller hangs it up (AT+CLCC, AT+CHUP) before it dials, so
    the next step rings instead of every dial getting ERROR until the ladder is used up; and
    its log names contacts by their last two digits only."""
    hub = bus("hub")
    results, seen = Collect(payloads=True), Collect()
    hub.on("call/result", results)
    hub.on("{service}/available", seen)
    assert hub.wait_subscribed(5)
    # contact 2 rings for a minute (3000 s at the simulator's scale) and the caller gives up
    # after 35 s (its ring time at scale 1): a 35 s window to kill it in, whatever the load
    sim.expect(Callee("busy"), Callee("answer_no_ack", ring_s=3000.0))
    sim.default = Callee("answer_ack")
    path = write_config(tmp_path, broker, sim, time_scale=1.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = [tmp_path / "caller-1.log", tmp_path / "caller-2.log"]

    def run(log_file: Path) -> subprocess.Popen:
        with open(log_file, "w") as f:
            return subprocess.Popen([sys.executable, "-m", "firmware.cli", "caller", "--config",
                                     str(path)], cwd=ROOT, env=env, stdout=f, stderr=f)
    proc = run(logs[0])
    try:
        # the caller's first session must exist before the request (later, the broker keeps it)
        assert wait_until(lambda: seen.words("caller/available")[-1:] == ["online"], 10)
        # "online" goes out just before the subscriptions: a notice to partner a comes back as a
        # text only once they hold (one that came too early is lost, so ask again)
        def subscribed() -> bool:
            hub.publish("partner/a/prompt", schemas.PartnerPrompt(
                question_id=uuid.uuid4(), kind="notice", key="notice.please_leave"))
            return wait_until(lambda: sim.sent_sms, 3)
        assert any(subscribed() for _ in range(10)), "the caller never subscribed"
        r = request(hub)
        assert wait_until(lambda: len(sim.dialed) == 2, 20), sim.dialed  # ringing contact 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert sim.call_up == NUMBERS["a"][1], "the modem keeps the orphaned call up"
        killed_at = len(sim.commands)
        proc = run(logs[1])
        assert wait_until(lambda: final(results, r) is not None, 30)
    finally:
        proc.terminate()
        proc.wait(10)
    after = [c for _, c in sim.commands[killed_at:]]
    assert "AT+CHUP" in after and after.index("AT+CHUP") < next(
        i for i, c in enumerate(after) if c.startswith("ATD")), "hung up before the next dial"
    steps = [(x.round, x.contact, x.outcome, x.error) for x in results if not x.final]
    assert steps[0][:3] == (1, 1, "busy")
    assert steps[1][:3] == (1, 2, "failed") and "restart" in steps[1][3]
    assert steps[2][:3] == (2, 1, "acknowledged")
    assert final(results, r).outcome == "acknowledged"
    assert [n for _, n in sim.dialed] == [NUMBERS["a"][0], NUMBERS["a"][1], NUMBERS["a"][0]]
    assert [n for _, n in sim.rang] == [n for _, n in sim.dialed], "every dial rang"
    text = logs[0].read_text() + logs[1].read_text()
    assert "hung up 1 call(s) the modem still held" in text
    for n in NUMBERS["a"]:
        assert n[1:] not in text, "a full number in the caller's log"


def test_call_test_command_prints_the_outcome_as_json(sim):
    sim.expect(Callee("answer_ack"))
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "call-test", "--port", sim.port,
                        "--number", "+31612345678", "--lang", "en", "--json",
                        "--time-scale", str(SCALE)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["outcome"] == "acknowledged" and out["steps"]["acknowledged"] > out["steps"]["answered"]
    sim.expect(Callee("busy"))
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "call-test", "--port", sim.port,
                        "--number", "+31612345678", "--json", "--time-scale", str(SCALE)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and json.loads(r.stdout)["outcome"] == "busy"


# -- issue 20, harm 3: a ladder used up without a phone ringing -----------------------------------
def make_caller(tmp_path, broker, bus, sim, sleep, **settings):
    cfg = load_caller_config(write_config(tmp_path, broker, sim, **settings))
    c = Caller(cfg, bus("caller", start=False), sleep=sleep).start()
    assert c.bus.wait_subscribed(5)
    return c


def modem_faults(health):
    return [f.code for f in health[-1].faults if f.code.startswith("modem.")] if health else None


def start_checked(sim, health):
    """The health check at the start is over (its last query, AT+CSQ, was answered) and found
    nothing: what changes after this is found by the dials (the next check is an hour away)."""
    assert wait_until(lambda: "AT+CSQ" in [c for _, c in sim.commands], 5)
    assert wait_until(lambda: health and modem_faults(health) == [], 5)


@pytest.fixture
def health(hubside):
    hub = hubside[0]
    got = Collect(payloads=True)
    hub.on("caller/health", got)
    assert hub.wait_subscribed(5)
    return got


def test_a_dial_refused_while_the_network_is_away_is_tried_again_with_back_off(
        tmp_path, broker, bus, sim, hubside, health):
    """The network is away when the ladder starts and back after the second wait: contact 1 is
    dialled again (10 s, then 20 s later at scale 1) and their phone rings, instead of all six
    steps being used up in under a second; the panel shows 'no mobile network' meanwhile."""
    hub, results, _ = hubside
    waits: list[float] = []
    caller = None

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 2:
            sim.registration = 1                    # the network is back
        return caller._stop.wait(0) if caller else False
    caller = make_caller(tmp_path, broker, bus, sim, sleep, health_every=3600)
    try:
        start_checked(sim, health)
        sim.registration = 2                         # registration lost
        sim.expect(Callee("answer_ack"))
        r = request(hub)
        assert wait_until(lambda: final(results, r) is not None, 30)
        assert final(results, r).outcome == "acknowledged"
        steps = [(x.round, x.contact, x.outcome) for x in results if not x.final]
        assert steps == [(1, 1, "acknowledged")]
        assert waits == [pytest.approx(10 * SCALE), pytest.approx(20 * SCALE)]
        assert [n for _, n in sim.dialed] == [NUMBERS["a"][0]] * 3
        assert [n for _, n in sim.rang] == [NUMBERS["a"][0]]
        assert any("modem.no_network" in [f.code for f in h.faults] for h in health), \
            "the panel was not told that the network is away"
        assert wait_until(lambda: modem_faults(health) == [], 5), "the fault was not cleared"
    finally:
        caller.stop()


@pytest.mark.parametrize("cause, fault", [("no_sim", "modem.no_sim"),
                                          ("no_network", "modem.no_network"),
                                          ("denied", "modem.network_denied"),
                                          ("refused", "modem.refused")])
def test_each_cause_of_a_refused_dial_is_its_own_fault_on_the_panel(
        tmp_path, broker, bus, sim, hubside, health, cause, fault):
    """No SIM, no coverage, a network that refuses the SIM, and a network that refuses calls
    (credit, barring) need different help; each is published on caller/health at the dial,
    not only at the next health check (here an hour away)."""
    hub, results, _ = hubside
    caller = make_caller(tmp_path, broker, bus, sim, lambda s: False, health_every=3600,
                         dial_attempts=2)
    try:
        start_checked(sim, health)
        if cause == "no_sim":
            sim.sim_present = False
        elif cause == "no_network":
            sim.registration = 2
        elif cause == "denied":
            sim.registration = 3
        else:
            sim.default = Callee("refused")
        r = request(hub)
        assert wait_until(lambda: final(results, r) is not None, 30)
        assert modem_faults(health) == [fault]
        from mqtt.faults import fault_class, needs_action
        assert fault_class(fault) is not None and needs_action(fault)
        dials = [x for x in results if not x.final and x.step == "dial"]
        assert dials and all(x.outcome == "failed" and "(2 tries)" in x.error for x in dials)
        assert len(sim.dialed) == 2 * len(dials) and not sim.rang
    finally:
        caller.stop()


def test_no_full_number_in_the_log_or_in_calls_sqlite3(tmp_path, broker, bus, sim, hubside, caplog):
    """Refused dials (their errors echo the dialled command), a refused text and a stored error
    from an earlier caller version: the log and the database file (with its write-ahead log)
    keep at most the last two digits."""
    import sqlite3
    caplog.set_level(logging.DEBUG)
    hub, results, _ = hubside
    db = tmp_path / "caller" / "calls.sqlite3"
    db.parent.mkdir()
    old = sqlite3.connect(db)      # what the caller before this one stored for a refused dial
    old.executescript("""
        CREATE TABLE requests (id TEXT PRIMARY KEY, partner TEXT NOT NULL, reason TEXT NOT NULL,
            only_contact INTEGER, received REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE steps (request_id TEXT NOT NULL, k INTEGER NOT NULL, started REAL NOT NULL,
            outcome TEXT, error TEXT, finished REAL, PRIMARY KEY (request_id, k));
        INSERT INTO requests VALUES ('00000000-0000-4000-8000-000000000001', 'b', 'test', 1, 0, 1);
        INSERT INTO steps VALUES ('00000000-0000-4000-8000-000000000001', 0, 0, 'failed',
            'ERROR (after ATD+31620000001;)', 1);""")
    old.close()
    caller = make_caller(tmp_path, broker, bus, sim, lambda s: False, dial_attempts=2)
    try:
        sim.default = Callee("refused")
        sim.sms_error = True
        r = request(hub)
        assert wait_until(lambda: final(results, r) is not None, 30)
        assert [x.outcome for x in results if not x.final] == ["failed"] * 4 + ["sms_failed"] * 2
    finally:
        caller.stop()
    stored = b"".join(p.read_bytes() for p in db.parent.glob("calls.sqlite3*"))
    for n in NUMBERS["a"] + NUMBERS["b"]:
        assert n[1:].encode() not in stored, f"{n} in calls.sqlite3"
        assert n[1:] not in caplog.text, f"{n} in the log"
    # what is kept names the contact by the last two digits
    assert "(after ATD…01;)".encode() in stored and "(after ATD…01;)" in caplog.text


def test_a_key_pressed_just_before_the_line_drops_is_delivered(sim, caller, hubside):
    """The contact presses 1 as the message ends and the network drops the call at that
    moment: the key press is the acknowledgement (R12), not a failure, and nobody else is
    called."""
    hub, results, _ = hubside
    sim.expect(Callee("ack_then_drop"))
    r = request(hub)
    assert wait_until(lambda: final(results, r) is not None, 30)
    assert [(x.contact, x.outcome) for x in results if not x.final] == [(1, "acknowledged")]
    assert final(results, r).outcome == "acknowledged"
    assert [n for _, n in sim.dialed] == [NUMBERS["a"][0]]
