"""Typed domain API over the AT channel for the SIMCom SIM7600 family.

SIM800 differences (documented, not built): hang up with ATH instead of AT+CHUP; DTMF detection
must be switched on with AT+DDET=1 and arrives as `+DTMF: <key>` (both URC forms are parsed);
text-to-speech is AT+CTTS only on SIM800H variants; call progress comes from +CLCC and
NO CARRIER instead of VOICE CALL: BEGIN/END.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware.caller.modem import parsers as P
from firmware.caller.modem.at import ATChannel
from firmware.caller.modem.errors import CmeError, ModemError, ModemGone, ModemParseError, ModemTimeout

log = logging.getLogger(__name__)

CALL_EVENTS = {"ring", "no_carrier", "busy", "no_answer", "call_begin", "call_end", "clcc",
               "dtmf", "tts_done", "ready", "cpin", "gone"}


@dataclass(frozen=True)
class ModemStatus:
    sim: str                 # READY, SIM PIN, not inserted, ...
    registration: str        # home, roaming, searching, denied, ...
    rssi_dbm: int | None

    @property
    def faults(self) -> list[tuple[str, str]]:
        out = []
        if self.sim != "READY":
            out.append(("modem.no_sim", f"SIM card: {self.sim}"))
        if self.registration == "denied":      # the network refuses this SIM: not coverage
            out.append(("modem.network_denied", "the network refuses the SIM's registration"))
        elif self.registration not in ("home", "roaming"):
            out.append(("modem.no_network", f"not registered ({self.registration})"))
        elif self.rssi_dbm is None or self.rssi_dbm < -105:
            out.append(("modem.weak_signal", f"signal {self.rssi_dbm} dBm"))
        return out


@dataclass
class CallReport:
    outcome: str
    steps: dict[str, float] = field(default_factory=dict)   # seconds since the dial was written
    error: str | None = None
    # the modem refused the dial itself (nothing rang): the caller may try the same step again
    dial_error: ModemError | None = None

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "steps": {k: round(v, 3) for k, v in self.steps.items()},
                "error": self.error}


class Modem:
    def __init__(self, port: str, *, baudrate: int = 115200,
                 on_sms: Callable[[int], None] | None = None,
                 on_reset: Callable[[], None] | None = None):
        self.on_sms = on_sms
        self.on_reset = on_reset
        self._events: queue.Queue[tuple[str, str]] = queue.Queue()
        self._in_call = threading.Event()
        self.channel = ATChannel(port, baudrate, on_urc=self._urc)
        self.ucs2 = False

    # -- URCs ----------------------------------------------------------------------------------
    def _urc(self, kind: str, line: str) -> None:
        if kind == "sms_stored":
            try:
                _, index = P.parse_cmti(line)
            except ModemParseError:
                log.warning("modem: garbled +CMTI dropped")
                return
            if self.on_sms:
                self.on_sms(index)
            return
        if kind in ("ready", "cpin") and not self._in_call.is_set() and self.on_reset:
            self.on_reset()
        if kind in CALL_EVENTS:
            self._events.put((kind, line))

    # -- set-up and status ---------------------------------------------------------------------
    def init(self) -> None:
        """Settings a reset loses: echo off, numeric errors, SMS text mode, +CMTI, call reports."""
        c = self.channel
        for attempt in range(3):
            try:
                c.command("AT", timeout=2)
                break
            except ModemTimeout:
                if attempt == 2:
                    raise
        for cmd in ("ATE0", "AT+CMEE=1", "AT+CMGF=1", 'AT+CSCS="GSM"', "AT+CNMI=2,1,0,0,0",
                    "AT+CLCC=1"):
            c.command(cmd)
        self.ucs2 = False

    def status(self) -> ModemStatus:
        c = self.channel
        try:
            sim = P.parse_cpin(c.command("AT+CPIN?", prefix="+CPIN:")[0])
        except CmeError as e:
            sim = "not inserted" if e.code in ("10", "SIM not inserted") else f"error {e.code}"
        except (IndexError, ModemParseError):
            sim = "unknown"
        try:
            reg = P.parse_creg(c.command("AT+CREG?", prefix="+CREG:")[0])
        except (IndexError, ModemParseError, CmeError):
            reg = "unknown"
        try:
            rssi = P.parse_csq(c.command("AT+CSQ", prefix="+CSQ:")[0]).rssi_dbm
        except (IndexError, ModemParseError, CmeError):
            rssi = None
        return ModemStatus(sim, reg, rssi)

    # -- SMS -----------------------------------------------------------------------------------
    def _charset(self, ucs2: bool) -> None:
        if ucs2 != self.ucs2:
            self.channel.command('AT+CSCS="UCS2"' if ucs2 else 'AT+CSCS="GSM"')
            self.ucs2 = ucs2

    def send_sms(self, number: str, text: str, timeout: float = 30.0) -> int:
        ucs2 = P.needs_ucs2(text)
        self._charset(ucs2)
        target = P.encode_ucs2_hex(number) if ucs2 else number
        body = P.encode_ucs2_hex(text) if ucs2 else text
        lines = self.channel.command(f'AT+CMGS="{target}"', prefix="+CMGS:", timeout=timeout,
                                     payload=body.encode("latin-1") + b"\x1a")
        if not lines:
            raise ModemParseError("no +CMGS reference after sending an SMS")
        return P.parse_cmgs(lines[-1])

    def read_sms(self, index: int) -> P.Sms:
        self._charset(True)   # UCS2 shows Dutch characters (and numbers) without loss
        lines = self.channel.command(f"AT+CMGR={index}", prefix="+CMGR:")
        return P.parse_cmgr(lines, ucs2=True)

    def delete_sms(self, index: int) -> None:
        self.channel.command(f"AT+CMGD={index}")

    # -- voice calls ---------------------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                self._events.get_nowait()
            except queue.Empty:
                return

    def _next(self, deadline: float) -> tuple[str, str] | None:
        try:
            return self._events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def hang_up(self, settle: float = 2.0, ack_key: str | None = None) -> bool:
        """Hang up (AT+CHUP, or ATH where AT+CHUP is not known) and wait for the call's end
        report, so it cannot leak into the next call. True when `ack_key` was among the events
        read meanwhile: a key pressed just before the line dropped still counts."""
        heard = False
        try:
            try:
                self.channel.command("AT+CHUP", timeout=5)
            except (ModemTimeout, ModemGone):
                raise
            except ModemError:
                self.channel.command("ATH", timeout=5)
        except ModemError as e:
            log.warning("modem: hang up failed: %s", e)
            settle = min(settle, 0.5)      # still read what already arrived
        deadline = time.monotonic() + settle
        while (ev := self._next(deadline)) is not None:
            if ack_key is not None and _is_key(ev, ack_key):
                heard = True
            if ev[0] in ("call_end", "no_carrier"):
                break
        return heard

    def calls(self) -> list[P.CallState]:
        """The calls the modem holds now (AT+CLCC)."""
        out = []
        for line in self.channel.command("AT+CLCC", prefix="+CLCC:"):
            try:
                out.append(P.parse_clcc(line))
            except ModemParseError:
                log.warning("modem: garbled +CLCC line skipped")
        return out

    def clear_calls(self) -> int:
        """Hang up whatever call the modem still holds (one left up by a caller that crashed,
        or an incoming one): a modem with a call up answers every dial with ERROR. Returns how
        many were up; raises ModemError when one stays up after hanging up."""
        up = [c for c in self.calls() if c.state != "disconnect"]
        if not up:
            return 0
        self.hang_up(settle=1.0)
        if [c for c in self.calls() if c.state != "disconnect"]:
            raise ModemError("a call stays up after AT+CHUP and ATH")
        return len(up)

    def call(self, number: str, message: str, *, ring_timeout: float = 45.0,
             repeats: int = 3, ack_key: str = "1",
             on_step: Callable[[str], None] | None = None) -> CallReport:
        """Dial, speak the message (up to `repeats` times), wait for the key; never count an
        unacknowledged call as delivered (R12)."""
        self._drain()
        self._in_call.set()
        t0 = time.monotonic()
        report = CallReport("failed")

        def step(name: str) -> None:
            report.steps[name] = time.monotonic() - t0
            if on_step:
                on_step(name)
        try:
            try:
                self.channel.command(f"ATD{number};", timeout=15)
            except ModemError as e:          # ERROR, +CME ERROR, no reply, port gone
                report.error, report.dial_error = str(e), e
                return report
            step("dialled")
            alerting = False
            deadline = t0 + ring_timeout
            while True:
                ev = self._next(deadline)
                if ev is None:
                    step("ring_timeout")
                    self.hang_up()
                    report.outcome = "no_answer"
                    return report
                kind, line = ev
                if _is_key(ev, ack_key):     # answered and pressed before the answer report
                    step("acknowledged")
                    report.outcome = "acknowledged"
                    self.hang_up()
                    return report
                if kind == "clcc":
                    try:
                        st = P.parse_clcc(line).state
                    except ModemParseError:
                        continue
                    if st == "alerting" and not alerting:
                        alerting = True
                        step("ringing")
                    elif st == "active":
                        break
                elif kind == "call_begin":
                    break
                elif kind == "busy":
                    step("busy")
                    report.outcome = "rejected" if alerting else "busy"
                    return report
                elif kind in ("no_answer", "no_carrier", "call_end"):
                    step(kind)
                    report.outcome = "no_answer"
                    return report
                elif kind in ("ready", "cpin", "gone"):
                    report.error = "the modem reset during the call" if kind != "gone" else \
                        "the modem's serial port is gone"
                    return report
            step("answered")
            # from here on a key press heard at any moment is the outcome, also when the line
            # drops right after it (the events are read in the order the modem sent them)
            for i in range(repeats):
                try:
                    self.channel.command(_ctts(message), timeout=10)
                except ModemError as e:
                    report.outcome, report.error = "answered_no_ack", f"message not played: {e}"
                    if self.hang_up(ack_key=ack_key):
                        step("acknowledged")
                        report.outcome, report.error = "acknowledged", None
                    return report
                step(f"message_{i + 1}")
                played = False
                while not played:
                    ev = self._next(time.monotonic() + 60)
                    if ev is None:
                        played = True
                        continue
                    kind, line = ev
                    if _is_key(ev, ack_key):
                        step("acknowledged")
                        report.outcome = "acknowledged"
                        self.hang_up()
                        return report
                    if kind == "tts_done":
                        played = True
                    elif kind in ("no_carrier", "call_end"):
                        step("hung_up_by_callee")
                        report.outcome = "answered_no_ack"
                        return report
                    elif kind in ("ready", "cpin", "gone"):
                        report.outcome, report.error = "answered_no_ack", "the modem reset during the call"
                        return report
            step("no_key")
            report.outcome = "answered_no_ack"
            if self.hang_up(ack_key=ack_key):
                step("acknowledged")
                report.outcome = "acknowledged"
            return report
        except ModemTimeout as e:
            report.error = str(e)
            return report
        except ModemGone as e:
            report.error = str(e)
            return report
        finally:
            self._in_call.clear()

    def close(self) -> None:
        self.channel.close()


def _is_key(event: tuple[str, str], key: str) -> bool:
    if event[0] != "dtmf":
        return False
    try:
        return P.parse_dtmf(event[1]) == key
    except ModemParseError:
        return False


def _ctts(message: str) -> str:
    """AT+CTTS=2 speaks ASCII; mode 1 takes UCS2 hex (Dutch ë, é ...)."""
    if all(32 <= ord(ch) < 127 and ch != '"' for ch in message):
        return f'AT+CTTS=2,"{message}"'
    return f'AT+CTTS=1,"{P.encode_ucs2_hex(message)}"'
