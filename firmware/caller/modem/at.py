"""Transport and AT channel: a reader thread splits the serial stream into lines, takes
unsolicited result codes out (they go to a dispatcher thread), and hands the rest to the one
command in flight. One lock: one command at a time; each command has its own time limit.
Echo (after a modem reset echo is on again) and garbage bytes are dropped here."""
from __future__ import annotations

import logging
import queue
import re
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from firmware.caller.modem.errors import CmeError, ModemError, ModemGone, ModemTimeout
from firmware.caller.modem.parsers import classify_urc, parse_cme, redact_numbers

log = logging.getLogger(__name__)

_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass
class _Pending:
    cmd: str
    prefix: str | None
    wants_prompt: bool
    lines: list[str] = field(default_factory=list)
    result: str | None = None          # "OK" or the error line
    prompt: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class ATChannel:
    def __init__(self, port: str, baudrate: int = 115200, *,
                 on_urc: Callable[[str, str], None] | None = None):
        try:
            self._ser = serial.Serial(port, baudrate, timeout=0.05, write_timeout=2)
        except (serial.SerialException, OSError) as e:
            raise ModemGone(f"cannot open modem port {port}: {e}") from None
        self.port = port
        self.on_urc = on_urc
        self._lock = threading.Lock()
        self._pending: _Pending | None = None
        self._plock = threading.Lock()
        self._urcs: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._stop = threading.Event()
        self.gone = False
        self.garbage_lines = 0
        self._reader = threading.Thread(target=self._read_loop, name="modem-reader", daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="modem-urc", daemon=True)
        self._reader.start()
        self._dispatcher.start()

    # -- commands ------------------------------------------------------------------------------
    def command(self, cmd: str, *, timeout: float = 5.0, prefix: str | None = None,
                payload: bytes | None = None) -> list[str]:
        """Send one command; return its response lines (no echo, no URCs, no final code).
        Raises CmeError, ModemError (plain ERROR), ModemTimeout, ModemGone."""
        with self._lock:
            if self.gone:
                raise ModemGone(f"modem port {self.port} is gone")
            p = _Pending(cmd, prefix, payload is not None)
            with self._plock:
                self._pending = p
            try:
                self._write(cmd.encode("ascii") + b"\r")
                deadline = time.monotonic() + timeout
                if payload is not None:
                    if not p.prompt.wait(max(0.0, deadline - time.monotonic())):
                        self._write(b"\x1b")   # ESC: leave the prompt
                        raise ModemTimeout(f"no '>' prompt after {redact_numbers(cmd)}")
                    if not p.done.is_set():
                        self._write(payload)
                if not p.done.wait(max(0.0, deadline - time.monotonic())):
                    raise ModemTimeout(f"no reply to {redact_numbers(cmd)} within {timeout:.1f} s")
            finally:
                with self._plock:
                    self._pending = None
            if self.gone and p.result is None:
                raise ModemGone(f"modem port {self.port} is gone")
            if p.result == "OK":
                return p.lines
            # the command may carry a phone number (ATD, AT+CMGS): errors name it by its last
            # two digits, as they end up in logs and in the call database
            said = redact_numbers(cmd)
            cme = parse_cme(p.result or "")
            if cme:
                raise CmeError(cme[0], cme[1], said)
            raise ModemError(f"{p.result} (after {said})")

    def _write(self, data: bytes) -> None:
        try:
            self._ser.write(data)
            self._ser.flush()
        # termios.error is not an OSError: pyserial's flush() (tcdrain) raises it when the port
        # vanished, and it must reach callers as ModemGone like any other lost port
        except (serial.SerialException, OSError, termios.error) as e:
            self._lost(e)
            raise ModemGone(f"cannot write to {self.port}: {e}") from None

    # -- reading -------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = self._ser.read(256)
            except (serial.SerialException, OSError, TypeError, termios.error) as e:
                if not self._stop.is_set():
                    self._lost(e)
                return
            if not chunk:
                if buf.strip() == b">":
                    self._line(">")
                    buf = b""
                continue
            buf += chunk
            while True:
                m = re.search(rb"[\r\n]", buf)
                if not m:
                    break
                raw, buf = buf[:m.start()], buf[m.end():]
                self._line(raw.decode("latin-1"))
            if buf.strip() == b">":           # the SMS prompt ends without a newline
                self._line(">")
                buf = b""

    def _line(self, text: str) -> None:
        line = _PRINTABLE.sub("", text).strip()
        if not line:
            return
        with self._plock:
            p = self._pending
            if p is not None and p.result is None:
                if line == p.cmd:                      # echo
                    return
                if p.prefix and line.startswith(p.prefix):
                    p.lines.append(line)
                    return
        urc = classify_urc(line)
        if urc is not None:
            self._urcs.put((urc, line))
            return
        with self._plock:
            p = self._pending
            if p is None or p.result is not None:
                self.garbage_lines += 1
                log.debug("modem: unsolicited line dropped (%d chars)", len(line))
                return
            if line == "OK" or line == "ERROR" or parse_cme(line):
                p.result = line
                p.done.set()
                p.prompt.set()     # an error instead of the '>' prompt ends the wait for it
            elif line == ">" and p.wants_prompt:
                p.prompt.set()
            elif p.prefix and not line.startswith(p.prefix) and not p.wants_prompt \
                    and not p.cmd.startswith("AT+CMGR"):
                self.garbage_lines += 1              # noise inside a response we can tell
            else:
                p.lines.append(line)

    def _lost(self, e: Exception) -> None:
        if self.gone:
            return
        self.gone = True
        log.error("modem: serial port %s lost: %s", self.port, e)
        with self._plock:
            if self._pending is not None:
                self._pending.done.set()
        self._urcs.put(("gone", str(e)))

    def _dispatch_loop(self) -> None:
        while True:
            item = self._urcs.get()
            if item is None:
                return
            if self.on_urc is not None:
                try:
                    self.on_urc(*item)
                except Exception:
                    log.exception("modem: URC handler failed for %s", item[0])

    def close(self) -> None:
        self._stop.set()
        self._urcs.put(None)
        try:
            self._ser.close()
        except (serial.SerialException, OSError):
            pass
        self._reader.join(2)
        self._dispatcher.join(2)
