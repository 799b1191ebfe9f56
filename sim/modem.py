"""A simulated SIMCom SIM7600 on a pseudo-terminal, speaking real AT syntax: echo (on again after
a reset), OK / ERROR / +CME ERROR, and the URCs of a voice call (+CLCC, VOICE CALL: BEGIN/END,
BUSY, NO ANSWER, NO CARRIER, +RXDTMF, +CTTS: 0), SMS (+CMTI, text mode, GSM and UCS2), status
(+CPIN, +CREG, +CSQ, +CCLK), the list of calls (AT+CLCC) and a reboot banner. Scripted per dial:
how the callee behaves. Like a real modem it keeps a call up when the program that dialled it dies
(the port closing hangs nothing up): the next dial gets `ERROR` until someone sends AT+CHUP or ATH.
Without a SIM a dial gets `+CME ERROR: 10` (a text `+CMS ERROR: 310`), without a network
`+CME ERROR: 30` (a text `+CMS ERROR: 331`).

Used by the tests, `make bench` and `make demo`; it is a test double of the modem, not of the
code under test (which talks to it through pyserial like to the real one)."""
from __future__ import annotations

import os
import queue
import re
import threading
import time
import tty
from dataclasses import dataclass, field

BEHAVIOURS = ("answer_ack", "answer_no_ack", "busy", "no_answer", "rejected", "no_carrier_mid",
              "cme_error", "refused", "reset_mid_call", "ack_then_drop")
# refused: the network will not place the call (calls barred, no credit): +CME ERROR: 3
# ack_then_drop: the callee presses the key as the message ends and the network drops the call
# at that moment: "+CTTS: 0", the key and NO CARRIER arrive together


@dataclass
class Callee:
    kind: str = "answer_ack"
    ring_s: float = 6.0        # until the callee answers (or rejects)
    ack_after_s: float = 3.0   # into the message, the callee presses the key
    key: str = "1"


@dataclass
class SentSms:
    number: str
    text: str
    ucs2: bool


@dataclass
class _Call:
    number: str
    callee: Callee
    state: str = "alerting"
    started: float = field(default_factory=time.monotonic)
    answered_at: float | None = None


class SimulatedSIM7600:
    MESSAGE_S = 8.0   # how long one spoken message lasts

    def __init__(self, *, time_scale: float = 1.0, echo: bool = True, garbage: bool = False,
                 urcs_in_responses: bool = False):
        self.time_scale = time_scale
        self.echo = echo
        self.garbage = garbage
        self.urcs_in_responses = urcs_in_responses
        self.sim_present = True
        self.registration = 1      # 1 home, 2 searching, 5 roaming
        self.csq = 20
        self.silent = False        # answers nothing (a hung modem)
        self.chup = True           # False: AT+CHUP is ERROR, only ATH hangs up (SIM800 class)
        self.sms_error = False     # +CMS ERROR on sending (no credit, network refuses)
        self.script: queue.Queue[Callee] = queue.Queue()
        self.default = Callee()
        self.commands: list[tuple[float, str]] = []
        self.dialed: list[tuple[float, str]] = []   # every ATD, also the refused ones
        self.rang: list[tuple[float, str]] = []     # the dials that placed a call (a phone rang)
        self.sent_sms: list[SentSms] = []
        self.inbox: dict[int, tuple[str, str]] = {}
        self.ucs2 = False
        self.resets = 0
        self._call: _Call | None = None
        self._timers: list[threading.Timer] = []
        self._wlock = threading.Lock()
        self._stop = threading.Event()
        self._sms_target: str | None = None
        self._sms_buf = b""
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self._slave = slave
        self.port = os.ttyname(slave)
        self._thread = threading.Thread(target=self._run, name="sim7600", daemon=True)
        self._thread.start()

    # -- scripting -----------------------------------------------------------------------------
    def expect(self, *callees: Callee) -> None:
        for c in callees:
            self.script.put(c)

    @property
    def call_up(self) -> str | None:
        """The number of the call the modem holds (ringing or talking), if any."""
        call = self._call
        return call.number if call is not None else None

    def hold_call(self, number: str, state: str = "active") -> None:
        """A call the modem holds from before (a program that dialled it and died): nothing is
        said on the port, as the program that could have heard it is gone."""
        call = _Call(number, Callee("answer_no_ack"), state=state)
        if state == "active":
            call.answered_at = time.monotonic()
        self._call = call

    def inject_sms(self, sender: str, text: str) -> int:
        index = max(self.inbox, default=0) + 1
        self.inbox[index] = (sender, text)
        self._send(f'+CMTI: "SM",{index}')
        return index

    def reboot(self) -> None:
        """The modem resets: the call is gone, echo is on, settings are lost, then the banner."""
        self.resets += 1
        self._cancel_timers()
        self._call = None
        self.echo = True
        self.ucs2 = False
        self._raw(b"\x00\xff\xfe")
        self._later(0.5, lambda: [self._send(x) for x in ("RDY", "+CPIN: READY", "SMS DONE", "PB DONE")])

    # -- wire ----------------------------------------------------------------------------------
    def _raw(self, data: bytes) -> None:
        with self._wlock:
            try:
                os.write(self._master, data)
            except OSError:
                pass

    def _send(self, *lines: str) -> None:
        self._raw(b"".join(f"\r\n{line}\r\n".encode("latin-1") for line in lines))

    def _later(self, seconds: float, fn) -> None:
        t = threading.Timer(seconds * self.time_scale, fn)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def _cancel_timers(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers = []

    def _run(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = os.read(self._master, 1024)
            except OSError:
                return
            if not chunk:
                return
            if self._sms_target is not None:
                self._sms_buf += chunk
                if b"\x1a" in self._sms_buf:
                    body, _, rest = self._sms_buf.partition(b"\x1a")
                    self._finish_sms(body.decode("latin-1"))
                    buf = rest
                elif b"\x1b" in self._sms_buf:
                    self._sms_target, self._sms_buf = None, b""
                    self._send("OK")
                continue
            buf += chunk
            while b"\r" in buf:
                line, _, buf = buf.partition(b"\r")
                cmd = line.decode("latin-1").strip()
                if cmd:
                    self._command(cmd)
                if self._sms_target is not None:
                    self._sms_buf = buf
                    buf = b""
                    break

    # -- commands ------------------------------------------------------------------------------
    def _command(self, cmd: str) -> None:
        self.commands.append((time.monotonic(), cmd))
        if self.silent:
            return
        if self.echo:
            self._raw(cmd.encode("latin-1") + b"\r")
        if self.garbage:
            self._raw(b"\xff\x00~\x13\r\n")
        u = cmd.upper()
        if u in ("AT", "AT+CMEE=1", "AT+CMEE=2", "AT+CLCC=1", "AT+CMGF=1") or u.startswith("AT+CNMI"):
            return self._send("OK")
        if u in ("ATE0", "ATE1"):
            self.echo = u == "ATE1"
            return self._send("OK")
        if u.startswith('AT+CSCS="'):
            self.ucs2 = "UCS2" in u
            return self._send("OK")
        if u == "AT+CPIN?":
            return self._send("+CPIN: READY", "OK") if self.sim_present else self._send("+CME ERROR: 10")
        if u == "AT+CREG?":
            return self._send(f"+CREG: 0,{self.registration}", "OK")
        if u == "AT+CSQ":
            if self.urcs_in_responses:
                return self._send(f"+CSQ: {self.csq},99", "RING", "OK")
            return self._send(f"+CSQ: {self.csq},99", "OK")
        if u == "AT+CCLK?":
            return self._send('+CCLK: "26/11/21,20:00:00+04"', "OK")
        if u.startswith("ATD") and u.endswith(";"):
            return self._dial(cmd[3:-1])
        if u == "AT+CLCC":
            call = self._call
            if call is None:
                return self._send("OK")
            stat = 0 if call.state == "active" else 3
            return self._send(f'+CLCC: 1,0,{stat},0,0,"{call.number}",145', "OK")
        if u == "AT+CHUP" and not self.chup:
            return self._send("ERROR")
        if u in ("AT+CHUP", "ATH"):
            return self._hangup()
        if u.startswith("AT+CTTS="):
            return self._speak()
        if u.startswith("AT+CMGS="):
            if not self.sim_present:
                return self._send("+CMS ERROR: 310")
            if self.registration not in (1, 5):
                return self._send("+CMS ERROR: 331")
            if self.sms_error:              # e.g. no credit: the network refuses the message
                return self._send("+CMS ERROR: 500")
            m = re.match(r'^AT\+CMGS="([^"]+)"', cmd, re.I)
            if not m:
                return self._send("ERROR")
            number = m.group(1)
            if self.ucs2 and re.fullmatch(r"[0-9A-Fa-f]+", number) and len(number) % 4 == 0:
                number = bytes.fromhex(number).decode("utf-16-be")
            self._sms_target = number
            self._raw(b"\r\n> ")
            return
        if u.startswith("AT+CMGR="):
            i = int(u.split("=")[1])
            if i not in self.inbox:
                return self._send("+CMS ERROR: 321")
            sender, text = self.inbox[i]
            if self.ucs2:
                sender_s = sender.encode("utf-16-be").hex().upper()
                text_s = text.encode("utf-16-be").hex().upper()
            else:
                sender_s, text_s = sender, text
            lines = [f'+CMGR: "REC UNREAD","{sender_s}","","26/11/21,20:05:00+04"', text_s]
            if self.urcs_in_responses:
                lines.insert(1, "+CLCC: 1,1,6,0,0")
            return self._send(*lines, "OK")
        if u.startswith("AT+CMGD="):
            self.inbox.pop(int(u.split("=")[1].split(",")[0]), None)
            return self._send("OK")
        return self._send("ERROR")

    def _finish_sms(self, body: str) -> None:
        number, self._sms_target, self._sms_buf = self._sms_target, None, b""
        text = body
        if self.ucs2 and re.fullmatch(r"[0-9A-Fa-f]+", body.strip() or "x") and len(body.strip()) % 4 == 0:
            text = bytes.fromhex(body.strip()).decode("utf-16-be")
        self.sent_sms.append(SentSms(number or "", text, self.ucs2))
        self._send(f"+CMGS: {len(self.sent_sms)}", "OK")

    # -- voice calls ---------------------------------------------------------------------------
    def _dial(self, number: str) -> None:
        self.dialed.append((time.monotonic(), number))
        # refusals that are the modem's or the network's, not the callee's: the script is kept
        if not self.sim_present:
            return self._send("+CME ERROR: 10")
        if self.registration not in (1, 5):
            return self._send("+CME ERROR: 30")
        if self._call is not None:
            return self._send("ERROR")
        callee = self.script.get_nowait() if not self.script.empty() else self.default
        if callee.kind == "cme_error":
            return self._send("+CME ERROR: 30")
        if callee.kind == "refused":
            return self._send("+CME ERROR: 3")
        self.rang.append((time.monotonic(), number))
        call = _Call(number, callee)
        self._call = call
        self._send("OK")
        if callee.kind == "busy":
            return self._later(1.0, lambda: self._end(call, "BUSY"))
        self._later(1.0, lambda: self._call is call and self._send(
            f'+CLCC: 1,0,3,0,0,"{number}",145'))
        if callee.kind == "rejected":
            return self._later(callee.ring_s, lambda: self._end(call, "BUSY"))
        if callee.kind == "no_answer":
            return self._later(60.0, lambda: self._end(call, "NO ANSWER"))
        if callee.kind == "reset_mid_call":
            return self._later(callee.ring_s / 2, self.reboot)
        self._later(callee.ring_s, lambda: self._answer(call))

    def _answer(self, call: _Call) -> None:
        if self._call is not call:
            return
        call.state, call.answered_at = "active", time.monotonic()
        self._send("VOICE CALL: BEGIN", f'+CLCC: 1,0,0,0,0,"{call.number}",145')

    def _speak(self) -> None:
        call = self._call
        if call is None or call.state != "active":
            return self._send("+CME ERROR: 3")
        self._send("OK")
        kind = call.callee.kind
        if kind == "answer_ack":
            self._later(call.callee.ack_after_s,
                        lambda: self._call is call and self._send(f"+RXDTMF: {call.callee.key}"))
        if kind == "no_carrier_mid":
            return self._later(1.0, lambda: self._end(call, "NO CARRIER", talked=True))
        if kind == "ack_then_drop":
            return self._later(self.MESSAGE_S, lambda: self._ack_then_drop(call))
        self._later(self.MESSAGE_S, lambda: self._call is call and self._send("+CTTS: 0"))

    def _ack_then_drop(self, call: _Call) -> None:
        if self._call is not call:
            return
        self._call = None
        secs = int(time.monotonic() - (call.answered_at or call.started))
        self._send("+CTTS: 0", f"+RXDTMF: {call.callee.key}", "NO CARRIER", f"VOICE CALL: END: {secs}")

    def _end(self, call: _Call, result: str, talked: bool = False) -> None:
        if self._call is not call:
            return
        self._call = None
        if talked or call.answered_at:
            secs = int(time.monotonic() - (call.answered_at or call.started))
            self._send(result, f"VOICE CALL: END: {secs}")
        else:
            self._send(result)

    def _hangup(self) -> None:
        call = self._call
        self._send("OK")
        if call is not None:
            self._call = None
            secs = int(time.monotonic() - (call.answered_at or call.started))
            self._send(f"VOICE CALL: END: {secs}")

    def close(self) -> None:
        self._stop.set()
        self._cancel_timers()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
