"""The modem stack against a simulated SIM7600 on a pseudo-terminal (real pyserial, real AT
syntax), and the pure parsers against literal modem replies."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from firmware.caller.modem import parsers as P
from firmware.caller.modem.at import ATChannel
from firmware.caller.modem.errors import CmeError, ModemGone, ModemParseError, ModemTimeout
from firmware.caller.modem.sim7600 import Modem
from sim.modem import Callee, SimulatedSIM7600
from tests.conftest import wait_until

SCALE = 0.02   # ring times, message lengths: 1 s of modem time = 20 ms


# -- parsers: literal replies -------------------------------------------------------------------
@pytest.mark.parametrize("line, dbm, ber", [("+CSQ: 20,99", -73, None), ("+CSQ: 0,0", -113, 0),
                                             ("+CSQ: 31,99", -51, None), ("+CSQ: 99,99", None, None)])
def test_csq(line, dbm, ber):
    assert P.parse_csq(line) == P.Signal(dbm, ber)


@pytest.mark.parametrize("line, state", [("+CREG: 0,1", "home"), ("+CREG: 2,5,\"00C3\",\"0010\"", "roaming"),
                                         ("+CEREG: 0,2", "searching"), ("+CGREG: 0,3", "denied")])
def test_creg(line, state):
    assert P.parse_creg(line) == state


@pytest.mark.parametrize("line, expected", [
    ('+CLCC: 1,0,3,0,0,"+31612345678",145', ("out", "alerting")),
    ('+CLCC: 1,0,0,0,0,"+31612345678",145', ("out", "active")),
    ("+CLCC: 1,1,4,0,0", ("in", "incoming")),
    ("+CLCC: 2,0,6,0,0", ("out", "disconnect")),
])
def test_clcc(line, expected):
    c = P.parse_clcc(line)
    assert (c.direction, c.state) == expected


def test_cmgr_ucs2_with_dutch_characters_and_the_time_zone():
    sms = P.parse_cmgr(['+CMGR: "REC UNREAD","002B00330031003600310032003300340035003600370038","","26/11/21,20:05:00+04"',
                        "0031002000EB00E9"], ucs2=True)
    assert sms.sender == "+31612345678" and sms.text == "1 ëé"
    assert sms.received == datetime(2026, 11, 21, 20, 5, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize("line, kind", [("RING", "ring"), ("NO CARRIER", "no_carrier"), ("BUSY", "busy"),
                                        ("NO ANSWER", "no_answer"), ("VOICE CALL: BEGIN", "call_begin"),
                                        ("VOICE CALL: END: 17", "call_end"), ('+CMTI: "SM",3', "sms_stored"),
                                        ("+RXDTMF: 1", "dtmf"), ("+DTMF: 1", "dtmf"), ("+CTTS: 0", "tts_done"),
                                        ("+CPIN: READY", "cpin"), ("SMS DONE", "sms_done"), ("RDY", "ready"),
                                        ("+CSQ: 20,99", None), ("OK", None)])
def test_urc_classification(line, kind):
    assert P.classify_urc(line) == kind


@pytest.mark.parametrize("parse, bad", [(P.parse_csq, "+CSQ: x,1"), (P.parse_csq, "+CSQ:"),
                                        (P.parse_csq, "CSQ: 20,99"), (P.parse_creg, "+CREG: "),
                                        (P.parse_cmti, "+CMTI: SM,3"), (P.parse_clcc, "+CLCC: ,,"),
                                        (P.parse_dtmf, "+RXDTMF:"), (P.parse_cmgs, "+CMGS: ref")])
def test_garbled_lines_raise_a_parse_error(parse, bad):
    with pytest.raises(ModemParseError):
        parse(bad)


def test_cme_and_cms_errors():
    assert P.parse_cme("+CME ERROR: 10") == ("CME", "10")
    assert P.parse_cme("+CMS ERROR: 321") == ("CMS", "321")
    assert P.parse_cme("ERROR") is None


def test_numbers_are_masked_for_logs():
    assert P.mask_number("+31 6 1234 5678") == "…78"


@pytest.mark.parametrize("text, expected", [
    ("+CME ERROR: 30 (after ATD+31612345678;)", "+CME ERROR: 30 (after ATD…78;)"),
    ("ERROR (after ATD0612345678;)", "ERROR (after ATD…78;)"),
    ('no reply to AT+CMGS="+31 6 1234 5678"', 'no reply to AT+CMGS="…78"'),
    ('AT+CMGS="' + P.encode_ucs2_hex("+31612345678") + '"', 'AT+CMGS="…78"'),   # UCS2 hex
    ("step 12 of request 3, round 2 at 2026-11-21 20:05", "step 12 of request 3, round 2 at 2026-11-21 20:05"),
])
def test_numbers_in_modem_errors_are_cut_to_their_last_two_digits(text, expected):
    assert P.redact_numbers(text) == expected


# -- AT channel ---------------------------------------------------------------------------------
@pytest.fixture
def sim():
    s = SimulatedSIM7600(time_scale=SCALE)
    yield s
    s.close()


def test_echo_garbage_and_urcs_inside_a_response_are_taken_out(sim):
    sim.garbage = True
    sim.urcs_in_responses = True
    urcs = []
    ch = ATChannel(sim.port, on_urc=lambda k, l: urcs.append(k))
    try:
        assert sim.echo is True
        assert ch.command("AT+CSQ", prefix="+CSQ:") == ["+CSQ: 20,99"]
        # the RING inside the response went to the URCs (handed out on their own thread)
        assert wait_until(lambda: "ring" in urcs, 2.0), urcs
        assert ch.garbage_lines >= 1
        assert ch.command("AT+CPIN?", prefix="+CPIN:") == ["+CPIN: READY"]
    finally:
        ch.close()


def test_cme_error_and_timeout_and_a_vanished_port(sim):
    ch = ATChannel(sim.port)
    sim.sim_present = False
    with pytest.raises(CmeError) as e:
        ch.command("AT+CPIN?", prefix="+CPIN:")
    assert e.value.code == "10" and isinstance(e.value, RuntimeError)
    sim.silent = True
    with pytest.raises(ModemTimeout):
        ch.command("AT", timeout=0.3)
    with pytest.raises(TimeoutError):       # ModemTimeout is a TimeoutError too
        ch.command("AT", timeout=0.1)
    sim.close()
    time.sleep(0.2)
    with pytest.raises((ModemGone, ModemTimeout)):
        ch.command("AT", timeout=0.5)
    ch.close()


def test_a_port_that_vanishes_under_tcdrain_is_modem_gone(sim, monkeypatch):
    """pyserial's flush() is tcdrain(), which raises termios.error (not an OSError) when the pty or
    USB port went away mid-write; callers catch ModemError, so it must arrive as ModemGone."""
    import termios
    ch = ATChannel(sim.port)
    assert ch.command("AT") == []

    def vanished() -> None:
        raise termios.error(5, "Input/output error")
    monkeypatch.setattr(ch._ser, "flush", vanished)
    with pytest.raises(ModemGone, match="cannot write"):
        ch.command("AT", timeout=0.5)
    ch.close()


def test_opening_a_missing_port_says_which():
    with pytest.raises(ModemGone, match="/dev/does-not-exist"):
        ATChannel("/dev/does-not-exist")


# -- calls --------------------------------------------------------------------------------------
@pytest.fixture
def modem(sim):
    m = Modem(sim.port)
    m.init()
    yield m
    m.close()


@pytest.mark.parametrize("kind, outcome", [("answer_ack", "acknowledged"),
                                           ("answer_no_ack", "answered_no_ack"),
                                           ("busy", "busy"), ("no_answer", "no_answer"),
                                           ("rejected", "rejected"),
                                           ("no_carrier_mid", "answered_no_ack"),
                                           ("cme_error", "failed"), ("refused", "failed"),
                                           ("reset_mid_call", "failed"),
                                           ("ack_then_drop", "acknowledged")])
def test_each_callee_behaviour_gives_its_outcome(sim, modem, kind, outcome):
    sim.expect(Callee(kind))
    report = modem.call("+31612345678", "Huishouden 42: een time-out is geëscaleerd. Druk op 1.",
                        ring_timeout=45 * SCALE)
    assert report.outcome == outcome, report
    if outcome == "acknowledged":
        assert "answered" in report.steps and report.steps["acknowledged"] > report.steps["answered"]
    if kind == "cme_error":
        assert "+CME ERROR: 30" in report.error
    if kind == "reset_mid_call":
        assert "reset" in report.error


@pytest.mark.parametrize("repeats", [1, 2])
def test_a_key_pressed_as_the_line_drops_is_the_acknowledgement(sim, modem, repeats):
    """Issue 20: the key, the end of the message and the drop arrive together; the key press
    counts whether the message was the last one (hang-up) or another was about to start."""
    sim.expect(Callee("ack_then_drop"))
    report = modem.call("+31612345678", "test", ring_timeout=45 * SCALE, repeats=repeats)
    assert report.outcome == "acknowledged" and report.error is None, report
    assert "acknowledged" in report.steps


def test_a_refused_dial_is_reported_as_refused_not_raised(sim, modem):
    """A plain ERROR to ATD (a call already up) used to escape as an exception."""
    sim.hold_call("+31612345678")                            # another program's call
    report = modem.call("+31687654321", "test", ring_timeout=0.3)
    assert report.outcome == "failed" and report.dial_error is not None
    assert report.error == "ERROR (after ATD…21;)"


@pytest.mark.parametrize("chup", [True, False])
def test_a_call_left_up_on_the_modem_is_hung_up(sim, modem, chup):
    """A caller killed mid-call leaves the call on the modem; clear_calls finds it with AT+CLCC
    and hangs up (AT+CHUP, or ATH on a modem without it), after which a dial rings."""
    sim.chup = chup
    sim.hold_call("+31612345678", state="alerting")
    assert [c.state for c in modem.calls()] == ["alerting"]
    assert modem.clear_calls() == 1 and sim.call_up is None
    assert ("ATH" in [c for _, c in sim.commands]) is (not chup)
    assert modem.clear_calls() == 0
    sim.expect(Callee("answer_ack"))
    assert modem.call("+31612345678", "test", ring_timeout=45 * SCALE).outcome == "acknowledged"


def test_a_key_other_than_1_is_not_an_acknowledgement(sim, modem):
    sim.expect(Callee("answer_ack", key="5"))
    assert modem.call("+31612345678", "test", ring_timeout=45 * SCALE).outcome == "answered_no_ack"


def test_the_message_is_spoken_in_ucs2_when_it_has_dutch_characters(sim, modem):
    sim.expect(Callee("answer_ack"))
    modem.call("+31612345678", "geëscaleerd", ring_timeout=1)
    ctts = [c for _, c in sim.commands if c.startswith("AT+CTTS=")]
    assert ctts and ctts[0].startswith("AT+CTTS=1,") and P.decode_ucs2_hex(ctts[0][11:-1]) == "geëscaleerd"


def test_after_a_modem_reset_init_restores_the_settings(sim, modem):
    resets = []
    modem.on_reset = lambda: resets.append(1)
    sim.reboot()
    # the reboot banner is handed out on the URC thread: wait for it
    assert wait_until(lambda: resets, 5), "the modem's reset was not noticed"
    assert sim.echo is True
    modem.init()
    assert sim.echo is False
    assert modem.status().sim == "READY"


def test_sms_out_in_gsm_and_ucs2_and_in(sim, modem):
    got = []
    modem.on_sms = got.append
    modem.send_sms("+31612345678", "Hoe voel je je? 1 rustig")
    modem.send_sms("+31612345678", "Hoe gaat het? één")
    assert [s.ucs2 for s in sim.sent_sms] == [False, True]
    assert sim.sent_sms[1].text == "Hoe gaat het? één" and sim.sent_sms[1].number == "+31612345678"
    i = sim.inject_sms("+31687654321", "3 niet rustig ë")
    deadline = time.monotonic() + 2
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [i]
    sms = modem.read_sms(i)
    assert sms.sender == "+31687654321" and sms.text == "3 niet rustig ë"


def test_status_reports_faults(sim, modem):
    assert modem.status().faults == []
    sim.registration, sim.csq = 2, 20
    assert [c for c, _ in modem.status().faults] == ["modem.no_network"]
    sim.registration, sim.csq = 1, 2
    assert [c for c, _ in modem.status().faults] == ["modem.weak_signal"]
    sim.registration = 3          # the network refuses the SIM: not the same as no coverage
    assert [c for c, _ in modem.status().faults] == ["modem.network_denied"]
    sim.sim_present = False
    assert "modem.no_sim" in [c for c, _ in modem.status().faults]


def test_an_sms_refused_before_the_prompt_fails_at_once(sim, modem):
    sim.sms_error = True
    t = time.monotonic()
    with pytest.raises(CmeError, match="CMS ERROR: 500"):
        modem.send_sms("+31612345678", "Hoe voel je je?")
    assert time.monotonic() - t < 2, "waited for a prompt that was never coming"
    sim.sms_error = False
    modem.send_sms("+31612345678", "ok")           # and the channel is usable after it
    assert sim.sent_sms[-1].text == "ok"
