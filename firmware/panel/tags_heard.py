"""The panel's Pi as a second BLE receiver (issue 14, docs/ble.md "A second receiver"): it scans
for the household's tags with bleak (the same `ble.scanner.Scanner` as the hub) and every
`WINDOW_S` sends a `panel/tags_heard` summary: per partner heard in the window, seconds since
their last advert, the median level and the count. Also empty, and `scanning: false` while its
radio is down, so the hub knows when the panel's silence means something.

What it knows: the household's tag IDs, from a small file of the installer's (`tags_file`, the
`tags` of the household plan and nothing else), readable only by the panel's user: an IRK lets
whoever holds it follow a partner's phone. What it sends: partners a/b only; an advert of any
other device is dropped in the drain and leaves no trace (R4).
"""
from __future__ import annotations

import logging
import stat
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from ble.identity import Resolver, TagIdError, parse_tag_id
from ble.scanner import Scanner, or_patterns
from core.clock import Clock
from core.config import StrictConfig, load_config
from core.errors import ConfigError
from mqtt import schemas
from mqtt.client import BusClient

log = logging.getLogger(__name__)

WINDOW_S = 2.0
POLL_S = 0.01   # real seconds between drains: the queue stays short at any clock speed
MAX_AGO_S = 60.0


class PanelTagsError(ConfigError):
    """The panel's tags file is missing, readable by others, or not valid."""


class PanelTags(StrictConfig):
    """The panel's tags file: `[tags]` with `a = [...]` and `b = [...]`, the tag IDs of the
    household plan (docs/ble.md "Choosing a tag and its ID")."""

    tags: dict[schemas.Partner, list[str]] = Field(
        description="per partner the tag IDs, as in the household plan", strict=False)


def load_tags(path: Path | str) -> dict[str, list[str]]:
    """The tag IDs per partner; a file that others may read, or a bad ID, is one sentence."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as e:
        raise PanelTagsError([("tags_file", f"cannot be read ({e.strerror}): the installer copies "
                               "the plan's tags to it")], str(p)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PanelTagsError([("tags_file", f"is readable by other users (mode {stat.S_IMODE(mode):04o}): "
                               "it holds the tags' keys; make it 0600, owned by the panel's user")],
                             str(p))
    cfg = load_config(p, PanelTags, PanelTagsError)
    problems = []
    for partner, ids in cfg.tags.items():
        for i, tid in enumerate(ids, 1):
            try:
                parse_tag_id(tid)
            except TagIdError as e:
                problems.append((f"tags.{partner}[{i}]", str(e)))
    if not any(cfg.tags.values()):
        problems.append(("tags", "names no tag: the panel would hear nobody"))
    if problems:
        raise PanelTagsError(problems, str(p))
    return {partner: list(ids) for partner, ids in cfg.tags.items() if ids}


@dataclass
class _Window:
    last: float = 0.0
    levels: list[float] = field(default_factory=list)


class TagsHeardService:
    """Scanner -> per-partner window -> `panel/tags_heard` every WINDOW_S of the injected clock."""

    def __init__(self, bus: BusClient, tags: Mapping[str, Sequence[str]], clock: Clock, *,
                 backend: type | None = None, backend_kwargs: dict | None = None,
                 on_summary: Callable[[schemas.TagsHeard], None] | None = None):
        self.bus, self.clock = bus, clock
        ids = {p: [parse_tag_id(t) for t in ts] for p, ts in tags.items()}
        self.resolver = Resolver([t for ts in ids.values() for t in ts])
        self._owner = {t.key: p for p, ts in ids.items() for t in ts}
        self._stop = threading.Event()
        self.scanner = Scanner(clock, self._stop, or_patterns(self.resolver), backend, backend_kwargs)
        self.scanning = False        # only once the scan runs does silence here mean something
        self.reason: str | None = None
        self.sent = 0
        self._window: dict[str, _Window] = {}
        self._on_summary = on_summary
        self._thread: threading.Thread | None = None

    def start(self) -> TagsHeardService:
        self._thread = threading.Thread(target=self._run, name="panel-tags-heard", daemon=True)
        self._thread.start()
        self.scanner.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.scanner.join()
        if self._thread is not None:
            self._thread.join(5)

    def alive(self) -> bool:
        return (self._thread is not None and self._thread.is_alive() and self.scanner.alive()
                and not self._stop.is_set())

    def _run(self) -> None:
        next_send = self.clock.monotonic() + WINDOW_S
        while not self._stop.wait(POLL_S):
            try:
                self._drain()
                now = self.clock.monotonic()
                if now >= next_send:
                    self._send(now)
                    next_send = max(next_send + WINDOW_S, now)
            except Exception:   # one bad advert or a full outbox must not end the receiver
                log.exception("tags heard: step failed")

    def _drain(self) -> None:
        q = self.scanner.queue
        while q:
            item = q.popleft()
            if len(item) == 5:   # (address, rssi, t, manufacturer_data, service_data)
                address, rssi, t, mfr, svc = item
                key = self.resolver.match(address, mfr, svc)
                if key is None:
                    continue     # somebody else's device: no trace (R4)
                w = self._window.setdefault(self._owner[key], _Window())
                w.last = max(w.last, t)
                w.levels.append(float(rssi))
            elif item[0] == "scanner":
                _, up, reason, _t = item
                if up != self.scanning:
                    if up:
                        log.info("the panel's Bluetooth scans for the household's tags")
                    else:
                        log.warning("the panel's Bluetooth is down (%s); the hub relies on its own "
                                    "radio meanwhile, and the scan is retried", reason)
                self.scanning, self.reason = up, (None if up else reason)
                self._window.clear()     # what was heard before a failure is not this window's

    def _send(self, now: float) -> None:
        heard = []
        if self.scanning:
            for p in sorted(self._window):
                w = self._window[p]
                levels = sorted(w.levels)
                heard.append(schemas.TagHeard(
                    partner=p, ago_s=round(min(MAX_AGO_S, max(0.0, now - w.last)), 2),
                    rssi=int(min(20, max(-127, round(levels[len(levels) // 2])))),
                    adverts=min(1000, len(levels))))
        self._window.clear()
        msg = self.bus.make(schemas.TagsHeard, window_s=WINDOW_S, scanning=self.scanning, heard=heard)
        self.bus.publish("panel/tags_heard", msg)
        self.sent += 1
        if self._on_summary is not None:
            self._on_summary(msg)

