"""Pure parsers for SIMCom modem replies (SIM7600 family; SIM800 differences noted). No I/O:
table-tested with literal modem lines."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from firmware.caller.modem.errors import ModemParseError

CME_RE = re.compile(r"^\+(CME|CMS) ERROR:\s*(.+)$")

# Unsolicited result codes: recognised and taken out of the stream before a command's response
# is parsed (unless the command in flight expects that prefix, e.g. AT+CPIN? -> +CPIN:).
URC_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ring", re.compile(r"^RING$")),
    ("no_carrier", re.compile(r"^NO CARRIER$")),
    ("busy", re.compile(r"^BUSY$")),
    ("no_answer", re.compile(r"^NO ANSWER$")),
    ("call_begin", re.compile(r"^VOICE CALL: BEGIN$")),
    ("call_end", re.compile(r"^VOICE CALL: END(?::\s*(\d+))?$")),
    ("clcc", re.compile(r"^\+CLCC:")),
    ("sms_stored", re.compile(r"^\+CMTI:")),
    ("dtmf", re.compile(r"^\+(?:RXDTMF|DTMF):\s*(.)")),
    ("tts_done", re.compile(r"^\+CTTS:\s*0$")),
    ("cpin", re.compile(r"^\+CPIN:")),
    ("sms_done", re.compile(r"^SMS DONE$")),
    ("pb_done", re.compile(r"^PB DONE$")),
    ("ready", re.compile(r"^RDY$")),
    ("call_ready", re.compile(r"^Call Ready$")),          # SIM800
    ("powered_down", re.compile(r"^NORMAL POWER DOWN$")),
)


def classify_urc(line: str) -> str | None:
    for name, pat in URC_PATTERNS:
        if pat.match(line):
            return name
    return None


@dataclass(frozen=True)
class Signal:
    rssi_dbm: int | None   # None: not known (99)
    ber: int | None


def parse_csq(line: str) -> Signal:
    m = re.match(r"^\+CSQ:\s*(\d+),\s*(\d+)$", line.strip())
    if not m:
        raise ModemParseError(f"not a +CSQ reply: {line!r}")
    rssi, ber = int(m.group(1)), int(m.group(2))
    dbm = None if rssi == 99 or rssi > 31 else -113 + 2 * rssi
    return Signal(dbm, None if ber == 99 else ber)


REG_STATES = {0: "not_searching", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"}


def parse_creg(line: str) -> str:
    """+CREG: <n>,<stat>[,...] (also +CGREG/+CEREG) -> a registration state word."""
    m = re.match(r"^\+C(?:G|E)?REG:\s*\d+,\s*(\d+)", line.strip())
    if not m:
        raise ModemParseError(f"not a +CREG reply: {line!r}")
    return REG_STATES.get(int(m.group(1)), "unknown")


def parse_cpin(line: str) -> str:
    m = re.match(r"^\+CPIN:\s*(.+)$", line.strip())
    if not m:
        raise ModemParseError(f"not a +CPIN reply: {line!r}")
    return m.group(1).strip()


def parse_cmti(line: str) -> tuple[str, int]:
    m = re.match(r'^\+CMTI:\s*"([A-Z]+)",\s*(\d+)$', line.strip())
    if not m:
        raise ModemParseError(f"not a +CMTI URC: {line!r}")
    return m.group(1), int(m.group(2))


def parse_dtmf(line: str) -> str:
    m = re.match(r"^\+(?:RXDTMF|DTMF):\s*(.)", line.strip())
    if not m:
        raise ModemParseError(f"not a DTMF URC: {line!r}")
    return m.group(1)


@dataclass(frozen=True)
class CallState:
    index: int
    direction: str   # "out" / "in"
    state: str       # active, held, dialing, alerting, incoming, waiting, disconnect


_CLCC_STATES = {0: "active", 1: "held", 2: "dialing", 3: "alerting", 4: "incoming", 5: "waiting",
                6: "disconnect"}


def parse_clcc(line: str) -> CallState:
    m = re.match(r"^\+CLCC:\s*(\d+),\s*([01]),\s*(\d),\s*(\d+),\s*(\d)", line.strip())
    if not m:
        raise ModemParseError(f"not a +CLCC line: {line!r}")
    return CallState(int(m.group(1)), "in" if m.group(2) == "1" else "out",
                     _CLCC_STATES.get(int(m.group(3)), "unknown"))


def parse_cme(line: str) -> tuple[str, str] | None:
    """('CME'|'CMS', code or text) for an error result, else None."""
    m = CME_RE.match(line.strip())
    return (m.group(1), m.group(2).strip()) if m else None


_CMGS_RE = re.compile(r"^\+CMGS:\s*(\d+)$")


def parse_cmgs(line: str) -> int:
    m = _CMGS_RE.match(line.strip())
    if not m:
        raise ModemParseError(f"not a +CMGS reply: {line!r}")
    return int(m.group(1))


@dataclass(frozen=True)
class Sms:
    sender: str
    text: str
    received: datetime | None


def _scts(text: str) -> datetime | None:
    # "26/11/21,20:00:00+04": +04 is quarter hours from UTC
    m = re.match(r"^(\d\d)/(\d\d)/(\d\d),(\d\d):(\d\d):(\d\d)([+-]\d+)$", text)
    if not m:
        return None
    yy, mo, dd, hh, mi, ss, tz = m.groups()
    try:
        offset = timedelta(minutes=15 * int(tz))
        return datetime(2000 + int(yy), int(mo), int(dd), int(hh), int(mi), int(ss),
                        tzinfo=timezone(offset))
    except ValueError:
        return None


def decode_ucs2_hex(text: str) -> str:
    return bytes.fromhex(text).decode("utf-16-be")


def _looks_ucs2_hex(text: str) -> bool:
    return len(text) % 4 == 0 and len(text) >= 4 and re.fullmatch(r"[0-9A-Fa-f]+", text) is not None


def parse_cmgr(lines: list[str], ucs2: bool) -> Sms:
    """AT+CMGR=<i> in text mode: '+CMGR: "REC UNREAD","<oa>",,"<scts>"' then the text line(s).
    With AT+CSCS="UCS2" the sender and the text are UCS2 hex."""
    if not lines:
        raise ModemParseError("empty +CMGR reply")
    m = re.match(r'^\+CMGR:\s*"([^"]*)","([^"]*)",(?:"[^"]*"|[^,]*),"([^"]*)"', lines[0].strip())
    if not m:
        raise ModemParseError(f"not a +CMGR header: {lines[0]!r}")
    sender, scts = m.group(2), m.group(3)
    body = "\n".join(lines[1:])
    if ucs2:
        try:
            if _looks_ucs2_hex(sender):
                sender = decode_ucs2_hex(sender)
            if _looks_ucs2_hex(body.strip()):
                body = decode_ucs2_hex(body.strip())
        except (ValueError, UnicodeDecodeError) as e:
            raise ModemParseError(f"bad UCS2 in +CMGR: {e}") from None
    return Sms(sender, body, _scts(scts))


def needs_ucs2(text: str) -> bool:
    """Plain ASCII goes as GSM text; anything else (é, ë, €, brackets that GSM escapes) as UCS2,
    so a Dutch character is never mangled by a charset mismatch."""
    return any(not (32 <= ord(ch) < 127 or ch in "\r\n") or ch in "[]{}\\^~|`" for ch in text)


def encode_ucs2_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def mask_number(number: str) -> str:
    """For logs: never a number in full."""
    digits = re.sub(r"\D", "", number)
    return f"…{digits[-2:]}" if len(digits) >= 2 else "…"


# a phone number as it may appear in a modem line or an error: digits (and spaces),
# at least 7 of them, an optional +; UCS2 hex of a number ("002B0033...") is a run of hex digits
_NUMBER_RE = re.compile(r"\+?\d[\d ]{5,}\d")
_HEX_NUMBER_RE = re.compile(r"(?:00[23][0-9A-Fa-f]){7,}")


def redact_numbers(text: str) -> str:
    """Every phone number in a text (a modem reply, an error, a log line) down to its last two
    digits: what may be logged, stored or published."""
    def hex_number(m: re.Match[str]) -> str:
        try:
            return mask_number(decode_ucs2_hex(m.group(0)))
        except (ValueError, UnicodeDecodeError):
            return "…"
    return _NUMBER_RE.sub(lambda m: mask_number(m.group(0)), _HEX_NUMBER_RE.sub(hex_number, text))
