"""The caller service: the escalation ladder, SMS check-ins and modem health.

- `call/request` -> that partner's contacts in order, `rounds` rounds (at least 2), then an SMS to
  each; every step's outcome on `call/result`. A call counts as delivered only when the contact
  pressed 1 (R12).
- The queue is persistent (SQLite): a step is recorded as started before the dial is written, so
  after a restart the ladder continues with the next step and nobody is called twice for one step.
- A modem that refuses a dial (ERROR, +CME ERROR, no network, no SIM, no reply) has not rung
  anybody: the same step is tried again after a back-off (`dial_attempts`, `dial_backoff_seconds`)
  before the ladder moves on, and the cause is published at once as its own fault on
  caller/health. Whenever the modem is (re)opened, a call it still holds (left up by a caller that
  crashed) is hung up first, so the first dial after a crash rings.
- Contact and partner numbers live only in this service's configuration file (mode 0600); they
  never go on the bus, and logs and calls.sqlite3 show at most the last two digits.
- SMS check-ins: prompts for a partner who agreed to SMS go out as text; a reply from that
  partner's number becomes that partner's answer only when it is clearly one option of the open
  question (`read_reply`); anything else gets one short request to reply with one digit (at most
  one per question), and is never passed on. A reply from any other number is deleted unread in
  our logs (no number, no text is kept).
"""
from __future__ import annotations

import logging
import queue
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.durable import open_durable
from core.texts import CALL_MESSAGE, CALL_SMS, digit_choices, options, prompt_text, say
from firmware.caller.config import (  # noqa: F401  (the config's names, as before issue 15)
    CallerConfig,
    CallerConfigError,
    ContactEntry,
    PartnerPhone,
    load_caller_config,
    write_caller_config,
)
from firmware.caller.gnss_clock import ClockSync
from firmware.caller.keywords import (
    Unclear,
    access_log_text,
    read_keyword,
    unclear_text,
    withdrawn_text,
)
from firmware.caller.modem import parsers as MP
from firmware.caller.modem.errors import CmeError, ModemError, ModemGone, ModemTimeout
from firmware.caller.modem.sim7600 import Modem
from mqtt import schemas
from mqtt.client import BusClient, Message

log = logging.getLogger(__name__)

RESULT_NS = uuid.UUID("0b7f1f84-8f55-4b2c-9a52-3c0d53a1e6a1")


@dataclass(frozen=True)
class Step:
    kind: str          # "dial" or "sms"
    round: int
    contact: int       # 1-based


def ladder_steps(n_contacts: int, rounds: int, only: int | None = None) -> list[Step]:
    if only is not None:
        return [Step("dial", 1, only)]
    dials = [Step("dial", r, i) for r in range(1, rounds + 1) for i in range(1, n_contacts + 1)]
    return dials + [Step("sms", rounds, i) for i in range(1, n_contacts + 1)]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, partner TEXT NOT NULL, reason TEXT NOT NULL,
    only_contact INTEGER, received REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS steps (request_id TEXT NOT NULL, k INTEGER NOT NULL, started REAL NOT NULL,
    outcome TEXT, error TEXT, finished REAL, PRIMARY KEY (request_id, k));
CREATE TABLE IF NOT EXISTS prompts (partner TEXT PRIMARY KEY, question_id TEXT NOT NULL, at REAL NOT NULL);
"""
# added to `prompts` later (a caller's existing file gets them when it starts): what the open
# question is and how many answers it has, whether this partner was already asked once to reply
# with one digit, and whether an answer to it was passed on
_PROMPT_COLUMNS = (("key", "TEXT"), ("options", "INTEGER"),
                   ("clarified", "INTEGER NOT NULL DEFAULT 0"), ("answered", "INTEGER NOT NULL DEFAULT 0"))


@dataclass(frozen=True)
class OpenQuestion:
    question_id: str
    key: str | None        # None: remembered by a caller from before keys were kept
    options: int
    clarified: bool
    answered: bool


class CallQueue:
    def __init__(self, path: Path):
        self._c = open_durable(path)
        # what is deleted or overwritten is zeroed in the file, so an old error text with a full
        # number does not stay readable in a free page
        self._c.execute("PRAGMA secure_delete=ON")
        self._c.executescript(_SCHEMA)
        have = {row[1] for row in self._c.execute("PRAGMA table_info(prompts)")}
        for column, decl in _PROMPT_COLUMNS:
            if column not in have:
                self._c.execute(f"ALTER TABLE prompts ADD COLUMN {column} {decl}")
        self._lock = threading.Lock()
        self._redact_stored_errors()

    def _redact_stored_errors(self) -> None:
        """A caller before this one stored the modem's error text as it was, and that text
        can name the dialled number (`ERROR (after ATD+316...;)`): such rows are rewritten to the
        last two digits, and the write-ahead log that held the old text is emptied."""
        rows = self._c.execute("SELECT request_id, k, error FROM steps WHERE error IS NOT NULL").fetchall()
        changed = [(MP.redact_numbers(e), rid, k) for rid, k, e in rows if MP.redact_numbers(e) != e]
        if not changed:
            return
        self._c.execute("BEGIN")
        self._c.executemany("UPDATE steps SET error = ? WHERE request_id = ? AND k = ?", changed)
        self._c.execute("COMMIT")
        self._c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("caller: %d stored call error(s) no longer show a full number", len(changed))

    def add(self, rid: str, partner: str, reason: str, only: int | None) -> bool:
        with self._lock:
            cur = self._c.execute("INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?, ?, 0)",
                                  (rid, partner, reason, only, time.time()))
            return cur.rowcount == 1

    def open_requests(self) -> list[tuple[str, str, str, int | None]]:
        with self._lock:
            return self._c.execute("SELECT id, partner, reason, only_contact FROM requests "
                                   "WHERE done = 0 ORDER BY received").fetchall()

    def steps(self, rid: str) -> dict[int, tuple[str | None, float | None]]:
        with self._lock:
            return {k: (o, f) for k, o, f in self._c.execute(
                "SELECT k, outcome, finished FROM steps WHERE request_id = ?", (rid,))}

    def start(self, rid: str, k: int) -> None:
        with self._lock:
            self._c.execute("INSERT INTO steps (request_id, k, started) VALUES (?, ?, ?)",
                            (rid, k, time.time()))

    def finish(self, rid: str, k: int, outcome: str, error: str | None) -> None:
        with self._lock:
            self._c.execute("UPDATE steps SET outcome = ?, error = ?, finished = ? "
                            "WHERE request_id = ? AND k = ?",
                            (outcome, _redact(error), time.time(), rid, k))

    def done(self, rid: str) -> None:
        with self._lock:
            self._c.execute("UPDATE requests SET done = 1 WHERE id = ?", (rid,))

    def remember_prompt(self, partner: str, question_id: str, key: str, n_options: int) -> None:
        """The partner's open question. Asked again (the same question_id), it keeps whether the
        partner was already asked to reply with one digit and whether they answered."""
        with self._lock:
            self._c.execute(
                "INSERT INTO prompts (partner, question_id, at, key, options) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (partner) DO UPDATE SET at = excluded.at, key = excluded.key, "
                "options = excluded.options, "
                "clarified = CASE WHEN question_id = excluded.question_id THEN clarified ELSE 0 END, "
                "answered = CASE WHEN question_id = excluded.question_id THEN answered ELSE 0 END, "
                "question_id = excluded.question_id",
                (partner, question_id, time.time(), key, n_options))

    def last_prompt(self, partner: str, max_age_s: float) -> OpenQuestion | None:
        with self._lock:
            row = self._c.execute("SELECT question_id, at, key, options, clarified, answered "
                                  "FROM prompts WHERE partner = ?", (partner,)).fetchone()
        if not row or time.time() - row[1] > max_age_s:
            return None
        return OpenQuestion(row[0], row[2], row[3] or 3, bool(row[4]), bool(row[5]))

    def claim_clarification(self, partner: str, question_id: str) -> bool:
        """True once per question: whether this partner may now be asked to reply with one digit."""
        with self._lock:
            return self._c.execute("UPDATE prompts SET clarified = 1 WHERE partner = ? AND "
                                   "question_id = ? AND clarified = 0",
                                   (partner, question_id)).rowcount == 1

    def mark_answered(self, partner: str, question_id: str) -> None:
        with self._lock:
            self._c.execute("UPDATE prompts SET answered = 1 WHERE partner = ? AND question_id = ?",
                            (partner, question_id))

    def close(self) -> None:
        with self._lock:
            self._c.close()


def _redact(text: str | None) -> str | None:
    """A modem error may echo the dialled number: it reaches the bus, a log or the database with
    its last two digits at most."""
    return MP.redact_numbers(text) if text else text


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


# -- reading an SMS reply ------------------------------------------------------------------------
_ARTICLES = ("een ", "a ", "an ")


def _plain(text: str) -> str:
    """How a reply and an option's words are compared: lower case, without accents (ë is e),
    single spaces, no spaces around it, without one trailing dot."""
    t = unicodedata.normalize("NFKD", text.casefold())
    t = " ".join("".join(ch for ch in t if not unicodedata.combining(ch)).split())
    return t[:-1].rstrip() if t.endswith(".") else t


def _words(text: str) -> str:
    """An option's words without a leading article: "een beetje gespannen" and "beetje
    gespannen" are the same answer, and so are "a bit tense" and "bit tense"."""
    t = _plain(text)
    for article in _ARTICLES:
        if t.startswith(article):
            return t[len(article):]
    return t


def option_words(key: str | None, n_options: int) -> dict[int, set[str]]:
    """Each answer's own words, in Dutch and in English, from the question's text."""
    words: dict[int, set[str]] = {i: set() for i in range(1, n_options + 1)}
    for lang in ("nl", "en"):
        for i, w in options(key or "", lang).items():
            if i in words:
                words[i].add(_words(w))
    return words


_DIGIT_FIRST = re.compile(r"([0-9])\s*[.)]?(?:\s*(\D.*))?")


def read_reply(text: str, key: str | None, n_options: int) -> tuple[int | None, str]:
    """(the option, "") when an SMS reply is clearly one answer of a question with n_options
    answers, else (None, why). Clear: the digit alone ("1", " 2 ", "3.", "1)"); the digit and
    that answer's own words in Dutch or English ("1 rustig", "2 a bit tense"); or the words
    alone when they are one answer's ("niet rustig" is 3, never 1). Case, accents, extra spaces
    and a trailing dot do not matter. The reason never quotes the text (R1, R14)."""
    t = _plain(text)
    if not t:
        return None, "empty"
    words = option_words(key, n_options)
    fits = [i for i, ws in words.items() if _words(t) in ws]
    m = _DIGIT_FIRST.fullmatch(t)
    if m is None:                                    # no digit first: the words alone
        if len(fits) == 1:
            return fits[0], ""
        return None, "words of more than one answer" if fits else "not one clear answer"
    digit, rest = int(m.group(1)), m.group(2)
    if not 1 <= digit <= n_options:
        return None, "a digit that is not an answer to this question"
    if rest is None:
        return digit, ""
    rest_fits = [i for i, ws in words.items() if _words(rest) in ws]
    if digit in rest_fits:
        return digit, ""
    return None, "a digit and another answer's words" if rest_fits else "not one clear answer"


@dataclass(frozen=True)
class Attempt:
    """One try of a step."""

    outcome: str
    error: str | None
    refused: ModemError | None = None   # the modem refused it: nothing rang, nothing was sent


# what a refusal's +CME/+CMS code says (3GPP TS 27.007 / 27.005): the SIM, or the network
_SIM_CODES = {("CME", c) for c in ("10", "11", "12", "13", "14", "15", "16", "17", "18")} | \
    {("CMS", c) for c in ("310", "311", "312", "313", "316", "317", "318")}
_NETWORK_CODES = {("CME", "30"), ("CME", "31"), ("CMS", "331"), ("CMS", "332")}
_DENIED_CODES = {("CME", "32")}     # network not allowed, emergency calls only
# the faults a refused dial or text can raise; the network taking a dial or a text clears them
DIAL_FAULTS = ("modem.silent", "modem.no_sim", "modem.no_network", "modem.network_denied",
               "modem.refused")


class Caller:
    def __init__(self, cfg: CallerConfig, bus: BusClient, *,
                 open_modem: Callable[[], Modem] | None = None,
                 clock_sync: ClockSync | None = None,
                 sleep: Callable[[float], bool] | None = None):
        """`sleep(seconds)` waits between tries of a refused dial and returns True when the
        caller is stopping (tests pass their own to run the back-off fast and see it)."""
        self.cfg = cfg
        self.clock_sync = clock_sync or ClockSync(
            gnss=(cfg.gnss_host, cfg.gnss_port) if cfg.gnss_port else None, flag=cfg.clock_flag)
        self.bus = bus
        self.queue = CallQueue(Path(cfg.state_dir) / "calls.sqlite3")
        self._open_modem = open_modem or (lambda: Modem(cfg.modem_port))
        self.modem: Modem | None = None
        self._wake = threading.Event()
        self._sms_indexes: list[int] = []
        self._sms_wake = threading.Event()
        self._outgoing: queue.Queue[tuple[str, str]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.faults: dict[str, str] = {}
        self._faults_lock = threading.Lock()
        self._modem_lock = threading.Lock()
        self._sleep = sleep or self._stop.wait
        # without a modem an incoming SMS waits on the SIM; it is tried again after this many
        # seconds, doubling up to the second value (tests make them short)
        self.sms_retry_s: tuple[float, float] = (1.0, 30.0)

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> Caller:
        self.bus.on("call/request", self._on_request)
        self.bus.on("partner/{partner}/prompt", self._on_prompt)
        self.bus.on("partner/{partner}/share-reply", self._on_share_reply)
        self.bus.start()
        for name, target in (("caller-ladder", self._ladder_loop), ("caller-sms", self._sms_loop),
                             ("caller-sms-out", self._sms_out_loop),
                             ("caller-health", self._health_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def alive(self) -> bool:
        """All worker threads still running (what the systemd watchdog is fed on)."""
        return all(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._sms_wake.set()
        for t in self._threads:
            t.join(10)
        if self.modem:
            self.modem.close()
        self.bus.stop()
        self.queue.close()

    # -- modem ---------------------------------------------------------------------------------
    def _ensure_modem(self) -> Modem | None:
        with self._modem_lock:
            if self.modem is not None and not self.modem.channel.gone:
                return self.modem
            if self.modem is not None:
                self.modem.close()
                self.modem = None
            try:
                m = self._open_modem()
                m.on_sms = self._queue_sms
                m.on_reset = self._modem_reset
                m.init()
                self.modem = m
                self._clear_fault("modem.silent")
            except ModemError as e:
                self._fault("modem.silent", f"modem not answering: {e}"[:150])
                return None
            self._clear_calls(m)
            return m

    def _clear_calls(self, modem: Modem) -> int:
        """Hang up a call the modem still holds; how many there were."""
        try:
            n = modem.clear_calls()
        except ModemError as e:
            log.error("caller: the modem holds a call that cannot be hung up: %s", _redact(str(e)))
            return 0
        if n:
            log.warning("caller: hung up %d call(s) the modem still held (left up by a caller "
                        "that stopped mid-call); the next dial can ring", n)
        return n

    def _modem_reset(self) -> None:
        log.warning("caller: the modem reset; its settings are restored")
        threading.Thread(target=self._reinit, name="caller-reinit", daemon=True).start()

    def _reinit(self) -> None:
        time.sleep(0.5)
        with self._modem_lock:
            if self.modem is not None:
                try:
                    self.modem.init()
                except ModemError as e:
                    log.error("caller: re-init after reset failed: %s", e)

    def _fault(self, code: str, reason: str) -> None:
        reason = _redact(reason) or ""
        with self._faults_lock:
            if self.faults.get(code) == reason:
                return
            self.faults[code] = reason
            self._publish_health()

    def _clear_fault(self, *codes: str) -> None:
        with self._faults_lock:
            if [self.faults.pop(c) for c in codes if c in self.faults]:
                self._publish_health()

    def _publish_health(self) -> None:
        now = schemas.now_utc()
        self.bus.publish("caller/health", schemas.Health(faults=[
            schemas.Fault(code=c, service="caller", since=now, reason=r[:150])
            for c, r in sorted(self.faults.items())]))

    # -- requests ------------------------------------------------------------------------------
    def _on_request(self, m: Message) -> None:
        r = m.payload
        if not isinstance(r, schemas.CallRequest):
            raise TypeError(f"call/request carries a CallRequest, not {type(r).__name__}")
        if self.queue.add(str(r.id), r.partner, r.reason, r.contact):
            log.info("caller: request %s for partner %s (%s) queued", r.id, r.partner, r.reason)
        self._wake.set()

    def _result(self, rid: str, partner: str, k: int, step: Step | None, outcome: str,
                final: bool, error: str | None = None) -> None:
        self.bus.publish("call/result", schemas.CallResult(
            id=uuid.uuid5(RESULT_NS, f"{rid}:{k}:{final}"), request_id=uuid.UUID(rid),
            partner=partner, contact=step.contact if step else None,
            round=step.round if step else 1,
            step=step.kind if step else "ladder", outcome=outcome, final=final,
            error=_redact(error)))

    def _ladder_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            for rid, partner, reason, only in self.queue.open_requests():
                if self._stop.is_set():
                    return
                try:
                    self._run_request(rid, partner, reason, only)
                except Exception:
                    log.exception("caller: request %s failed; it stays queued", rid)

    def _run_request(self, rid: str, partner: str, reason: str, only: int | None) -> None:
        contacts = self.cfg.contacts.get(partner, [])
        if not contacts or (only is not None and only > len(contacts)):
            self._result(rid, partner, 0, None, "failed", True,
                         f"no contact {only or ''} configured for partner {partner}".replace("  ", " "))
            self.queue.done(rid)
            return
        steps = ladder_steps(len(contacts), self.cfg.rounds, only)
        seen = self.queue.steps(rid)
        for k, (outcome, finished) in seen.items():
            if finished is None:   # interrupted by a restart: never dialled again
                self.queue.finish(rid, k, "failed", "interrupted by a restart")
                self._result(rid, partner, k, steps[k], "failed", False, "interrupted by a restart")
            elif outcome == "acknowledged":
                self._result(rid, partner, len(steps), None, "acknowledged", True)
                self.queue.done(rid)
                return
        for k, step in enumerate(steps):
            if k in seen:
                continue
            modem = self._ensure_modem()
            while modem is None:
                if self._stop.wait(5.0):
                    return          # the request stays queued for the next start
                modem = self._ensure_modem()
            contact = contacts[step.contact - 1]
            self.queue.start(rid, k)
            tried = self._try_step(modem, step, contact)
            if tried is None:
                return          # stopping mid back-off: a restart counts this step as interrupted
            outcome, error = tried
            self.queue.finish(rid, k, outcome, error)
            self._result(rid, partner, k, step, outcome, False, error)
            log.info("caller: request %s step %d (%s contact %d round %d, %s): %s", rid, k,
                     step.kind, step.contact, step.round, MP.mask_number(contact.number), outcome)
            if outcome == "acknowledged":
                self._result(rid, partner, len(steps), None, "acknowledged", True)
                self.queue.done(rid)
                return
        final = "exhausted" if only is None else self.queue.steps(rid).get(0, ("failed",))[0]
        self._result(rid, partner, len(steps), None, final or "failed", True)
        self.queue.done(rid)

    def _try_step(self, modem: Modem | None, step: Step,
                  contact: ContactEntry) -> tuple[str, str | None] | None:
        """The step's outcome; a dial or text the modem refused is tried again after a
        back-off, so a network that is away for a minute, or a call left up on the modem, does
        not use up the ladder without a phone ringing. None: the caller is stopping."""
        attempts = self.cfg.dial_attempts
        delay = self.cfg.dial_backoff_seconds * self.cfg.time_scale
        who = f"{step.kind} contact {step.contact} ({MP.mask_number(contact.number)})"
        tried = Attempt("failed", None)
        for n in range(1, attempts + 1):
            if modem is None:
                tried = Attempt("failed", "the modem does not answer",
                                ModemTimeout("the modem does not answer"))
            else:
                tried = self._do(modem, step, contact)
            if tried.refused is None:
                # the network took it; a text that went does not show that calls go
                self._clear_fault(*(c for c in DIAL_FAULTS
                                    if step.kind == "dial" or c != "modem.refused"))
                return tried.outcome, tried.error
            if modem is not None and self._clear_calls(modem):
                continue                            # it was our own call left up: again at once
            code, reason = self._diagnose(modem, tried.refused)
            self._fault(code, reason)
            if n == attempts:
                log.error("caller: %s refused %d times (%s): the ladder moves on", who, n, code)
                break
            log.warning("caller: %s refused (%s: %s); try %d of %d in %.1f s", who, code,
                        _redact(tried.error), n + 1, attempts, delay)
            if self._sleep(delay):
                return None
            delay *= 2
            modem = self._ensure_modem()
        return tried.outcome, f"{tried.error} ({attempts} tries)"

    def _diagnose(self, modem: Modem | None, refused: ModemError) -> tuple[str, str]:
        """Which fault a refused dial or text shows, so the panel tells the household (or the
        installer) what to do: the modem, the SIM, the network's coverage, the network refusing
        the SIM, or the network refusing calls (credit, barring)."""
        said = _redact(str(refused)) or ""
        if modem is None or isinstance(refused, (ModemTimeout, ModemGone)):
            return "modem.silent", f"the modem did not take the dial: {said}"
        try:
            found = dict(modem.status().faults)
        except ModemError as e:
            return "modem.silent", f"the modem did not answer a status query: {_redact(str(e))}"
        for code in ("modem.no_sim", "modem.network_denied", "modem.no_network"):
            if code in found:
                return code, f"{found[code]} ({said})"
        if isinstance(refused, CmeError):
            key = (refused.kind, refused.code)
            if key in _SIM_CODES:
                return "modem.no_sim", f"the SIM card refused: {said}"
            if key in _DENIED_CODES:
                return "modem.network_denied", f"the network allows emergency calls only: {said}"
            if key in _NETWORK_CODES:
                return "modem.no_network", f"no mobile network service: {said}"
        return "modem.refused", f"the modem or the network refused: {said}"

    def _do(self, modem: Modem, step: Step, contact: ContactEntry) -> Attempt:
        code = self.cfg.code_word
        if step.kind == "sms":
            try:
                modem.send_sms(contact.number, CALL_SMS[contact.language].format(code=code))
                return Attempt("sms_sent", None)
            except ModemError as e:
                return Attempt("sms_failed", _redact(str(e)[:150]), e)
        report = modem.call(contact.number, CALL_MESSAGE[contact.language].format(code=code),
                            ring_timeout=self.cfg.ring_seconds * self.cfg.time_scale,
                            repeats=self.cfg.message_repeats)
        return Attempt(report.outcome, _redact(report.error[:150]) if report.error else None,
                       report.dial_error)

    # -- SMS check-ins -------------------------------------------------------------------------
    def _on_prompt(self, m: Message) -> None:
        p = m.payload
        if not isinstance(p, schemas.PartnerPrompt):
            raise TypeError(f"a partner prompt carries a PartnerPrompt, not {type(p).__name__}")
        phone = self.cfg.partners.get(m.partner)
        if not phone or not phone.sms_checkins or not phone.number:
            return
        if p.kind in ("checkin", "evaluation"):
            # how many answers: the prompt says; a prompt without the number has as many as its
            # text lists, or 1-3 as before the number was kept
            n = p.options or len(options(p.key, "en")) or 3
            self.queue.remember_prompt(m.partner, str(p.question_id), p.key, n)
        # one sender thread keeps the texts in the order the hub asked
        self._outgoing.put((phone.number, prompt_text(p.key, phone.language, p.task,
                                                      list(phone.calming_tasks))))

    def _sms_out_loop(self) -> None:
        while not self._stop.is_set():
            try:
                number, text = self._outgoing.get(timeout=1.0)
            except queue.Empty:
                continue
            modem = self._ensure_modem()
            if modem is None:
                log.error("caller: no modem; a text to %s is dropped", MP.mask_number(number))
                continue
            try:
                modem.send_sms(number, text)
            except ModemError as e:
                log.error("caller: SMS to %s failed: %s", MP.mask_number(number), _redact(str(e)))

    def _queue_sms(self, index: int) -> None:
        self._sms_indexes.append(index)
        self._sms_wake.set()

    def _sms_loop(self) -> None:
        retry = self.sms_retry_s[0]
        while not self._stop.is_set():
            self._sms_wake.wait(1.0)
            self._sms_wake.clear()
            while self._sms_indexes and not self._stop.is_set():
                index = self._sms_indexes.pop(0)
                try:
                    handled = self._handle_sms(index)
                except Exception:
                    log.exception("caller: incoming SMS %d could not be handled", index)
                    continue
                if handled:
                    retry = self.sms_retry_s[0]
                    continue
                # no modem: the message stays on the SIM and first in line; wait before the
                # next try instead of reopening the port in a tight loop
                self._sms_indexes.insert(0, index)
                if self._stop.wait(retry):
                    return
                retry = min(retry * 2, self.sms_retry_s[1])

    def _handle_sms(self, index: int) -> bool:
        """False when there is no modem to read it from (the caller tries again later)."""
        modem = self._ensure_modem()
        if modem is None:
            return False
        sms = modem.read_sms(index)
        modem.delete_sms(index)
        partner = next((p for p, ph in self.cfg.partners.items()
                        if ph.number and _digits(ph.number) == _digits(sms.sender)), None)
        if partner is None:
            log.info("caller: SMS from an unknown number ignored and deleted")
            return True
        if self._share_keyword(partner, sms.text):
            return True
        # the log says why a text is not an answer, never what it says or who sent it (R1, R14)
        question = self.queue.last_prompt(partner, max_age_s=3600)
        if question is None:
            log.info("caller: SMS from partner %s not passed on: no open question", partner)
            return True
        choice, why = read_reply(sms.text, question.key, question.options)
        if choice is None:
            self._clarify(partner, question, why)
            return True
        self.bus.publish(f"partner/{partner}/input", schemas.PartnerInput(
            kind="answer", via="sms", question_id=uuid.UUID(question.question_id), choice=choice))
        self.queue.mark_answered(partner, question.question_id)
        log.info("caller: SMS answer of partner %s passed on", partner)
        return True

    # -- sharing with the care worker (docs/care.md) --------------------------------------------
    def _share_keyword(self, partner: str, text: str) -> bool:
        """STOP DELEN / STOP SHARING or LOGBOEK / ACCESS LOG from this partner's own number: the
        request goes to the consent filter for this partner only (the topic names them)."""
        kw = read_keyword(text)
        if kw is None:
            return False
        phone = self.cfg.partners[partner]
        if isinstance(kw, Unclear):
            log.info("caller: SMS from partner %s about sharing not passed on (%s); the words "
                     "were texted back", partner, kw.why)
            if phone.number:
                self._outgoing.put((phone.number, unclear_text(phone.language)))
            return True
        self.bus.publish(f"partner/{partner}/share-request", self.bus.make(
            schemas.ShareRequest, kind=kw.kind, categories=list(kw.categories)))
        log.info("caller: partner %s asked by SMS to %s", partner,
                 "withdraw consent" if kw.kind == "withdraw" else "read the access log")
        return True

    def _on_share_reply(self, m: Message) -> None:
        r = m.payload
        if not isinstance(r, schemas.ShareReply):
            raise TypeError(f"a share reply carries a ShareReply, not {type(r).__name__}")
        phone = self.cfg.partners.get(m.partner or "")
        if not phone or not phone.number:
            log.warning("caller: no number for partner %s; a share reply is not texted", m.partner)
            return
        text = (withdrawn_text(list(r.categories), phone.language) if r.kind == "withdrawn"
                else access_log_text(list(r.entries), phone.language))
        self._outgoing.put((phone.number, text))

    def _clarify(self, partner: str, question: OpenQuestion, why: str) -> None:
        """One short text back to the partner's own number: reply with one digit. Once per
        question, and not after an answer was passed on: an automatic reply (or a "thanks")
        must not start a conversation of texts."""
        phone = self.cfg.partners[partner]
        if question.answered:
            log.info("caller: SMS from partner %s not passed on (%s); the question was answered "
                     "already, so no request to reply again", partner, why)
        elif not phone.number or not self.queue.claim_clarification(partner, question.question_id):
            log.info("caller: SMS from partner %s not passed on (%s); already asked once to reply "
                     "with one digit", partner, why)
        else:
            log.info("caller: SMS from partner %s not passed on (%s); asked to reply with one "
                     "digit", partner, why)
            self._outgoing.put((phone.number, say(
                "sms.reply_one_digit", phone.language,
                choices=digit_choices(question.options, phone.language))))

    # -- health --------------------------------------------------------------------------------
    def _health_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_health()
            except Exception:        # a health check must never end the health thread
                log.exception("caller: health check failed")
            if self._stop.wait(self.cfg.health_every_seconds):
                return

    def check_health(self) -> None:
        try:
            source = self.clock_sync.check()
        except OSError as e:
            source = "none"
            log.error("caller: could not set the clock: %s", e)
        if source == "none":
            self._fault("clock.unsynchronised", "no NTP and no GNSS fix: the wall clock is not trusted")
        else:
            self._clear_fault("clock.unsynchronised")
        modem = self._ensure_modem()
        if modem is None:
            self._power_cycle()
            return
        try:
            status = modem.status()
        except ModemError as e:
            self._fault("modem.silent", f"status query failed: {e}"[:150])
            self._power_cycle()
            return
        self._clear_fault("modem.silent")
        found = dict(status.faults)
        for code in ("modem.no_sim", "modem.no_network", "modem.network_denied", "modem.weak_signal"):
            if code in found:
                self._fault(code, found[code])
            else:
                self._clear_fault(code)

    def _power_cycle(self) -> None:
        if self.cfg.power_gpio is None:
            return
        from gpiozero import OutputDevice
        log.warning("caller: power-cycling the modem on GPIO %d", self.cfg.power_gpio)
        key = OutputDevice(self.cfg.power_gpio)
        try:
            key.on()
            time.sleep(1.5)          # SIM7600 PWRKEY: a pulse of ~1 s toggles power
            key.off()
        finally:
            key.close()
