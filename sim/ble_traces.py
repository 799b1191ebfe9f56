"""Simulated RSSI traces of the partners' tags, with the ground truth of when each partner crossed
the front door. Used by the tests, the bench and the demo; the JSONL form is the one
`timeout-hub presence-replay` reads: {"t", "address", "rssi"[, "manufacturer_data", "service_data"]},
and with `door=True` also the exit door's contact: {"t", "door", "state": "open"|"closed"} (and
{"t", "door", "ok": false} when its sensor dies).

Radio model (docs/ble.md, "Simulation" has the sources of each number): log-distance path loss
(-62 dBm at 1 m, exponent 2.7); log-normal shadowing of `sigma` split into a spatial part
(correlated over ~2.5 m walked, constant while the tag lies still) and a temporal part (AR(1),
~2 s, people and doors moving around it); the exterior wall (12 dB) once the tag is outside;
a body between tag and hub for 30 % of stays (10-20 dB for the whole stay, i.e. minutes); deep
fades at home (phone in a drawer, lying on it: 20-30 dB for 20-180 s, ~every 2 h at home); random
packet loss and the receiver's sensitivity. Movement: at home the partner stays in rooms 1.5-7 m
from the hub and walks between them; leaving, they walk to the door (8 m), lock it from the
doorstep (0-5 s) and walk on down the street at 1.2-1.4 m/s; arriving, the reverse (unlocking
takes 3-10 s).

Door (issue 14): every departure opens the door 0.5-2 s before the crossing and closes it from the
doorstep 1-5 s after (locking); every return opens it 0-1 s before the crossing (unlocked) and
closes it from inside 2-6 s after. `errands` add door openings without leaving: "visitor" (the
partner stands in the open doorway, inside, 30-120 s) and "bin" (out of the door to 10 m and back
after 60 s, the door left open half of the time). A bin trip is in `Trace.brief`, not in the
truth: seeing it as a short away or not are both right. The door's timings come from their own
random stream, so adding the contact does not change the adverts (errands do: they are walks).

Second receiver (issue 14, round 3, `receiver=Receiver()`): the home gets a plan (the hub at the
origin, the front door 8 m along +x, rooms at any bearing) and a second radio, by default the
panel's Pi at the far side (-6, 3) m: the same adverts on air, heard with its own path loss,
interior walls, bodies, shadowing, loss and outages; lines with `"receiver": "panel-1"`. Its
randomness comes from its own streams: the hub's adverts are the same with or without it.
"""
from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from ble.identity import APPLE, EDDYSTONE_UUID, ah, parse_tag_id

DOOR_M = 8.0           # distance hub -> front door: the ground truth's home boundary
STEP_M = DOOR_M + 1.0  # the doorstep, outside: locking or unlocking the door
WALK_M = 80.0          # walked in the street (mean RSSI ~ -125 dBm), then gone: FAR_M
FAR_M = 1000.0
ROOMS_M = (1.5, 7.0)
DOOR_XY = (DOOR_M, 0.0)  # plan of the home: the hub at (0, 0), the front door along +x
RPA_ROTATE_S = 900.0   # phones change their private address about every 15 minutes


@dataclass(frozen=True)
class Radio:
    p0: float = -62.0                 # a 0..-4 dBm tag at 1 m
    exponent: float = 2.7
    sigma: float = 6.0                # total shadowing, split evenly (in power) spatial/temporal
    shadow_m: float = 2.5             # spatial decorrelation distance
    shadow_tau: float = 2.0           # temporal decorrelation
    loss: float = 0.3
    sensitivity: float = -98.0
    body_prob: float = 0.3
    body_db: tuple[float, float] = (10.0, 20.0)
    wall_db: float = 12.0             # exterior wall, once past the door
    fade_per_h: float = 0.5           # deep fades at home (drawer, lying on it)
    fade_s: tuple[float, float] = (20.0, 180.0)
    fade_db: tuple[float, float] = (20.0, 30.0)
    walk_speed: tuple[float, float] = (1.2, 1.4)


@dataclass(frozen=True)
class Receiver:
    """A second receiver in the home (issue 14, round 3): by default the panel's Pi at the far side
    of the home from the front door, scanning with its own built-in radio. Its own path loss (the
    Pi's on-board antenna is a few dB weaker than a USB dongle), the interior walls between it and
    rooms farther than `inner_m`, its own shadowing, bodies and packet loss, and its own outages
    (Wi-Fi or the scan dropping: nothing reported at all). The exterior wall and deep fades (a
    drawer surrounds the phone) are the same as for the hub."""
    name: str = "panel-1"
    xy: tuple[float, float] = (-6.0, 3.0)
    p0: float = -64.0
    exponent: float = 2.9
    inner_db: float = 6.0
    inner_m: float = 5.0
    loss: float = 0.3
    sensitivity: float = -98.0
    outages_per_day: float = 2.0
    outage_s: tuple[float, float] = (60.0, 600.0)


@dataclass
class Trace:
    """Adverts sorted by time, as arrays; `payload[i]` is (address, manufacturer_data, service_data)."""

    t: np.ndarray
    rssi: np.ndarray
    payload_index: np.ndarray
    payloads: list[tuple[str, dict[int, bytes], dict[str, bytes]]]
    truth: list[tuple[float, str, str]] = field(default_factory=list)  # (t, partner, home|away)
    duration: float = 0.0
    doors: list[tuple[float, str, str]] = field(default_factory=list)  # (t, door, open|closed)
    door_health: list[tuple[float, str, bool]] = field(default_factory=list)  # (t, door, ok)
    brief: list[tuple[float, float, str]] = field(default_factory=list)  # bin trips (t0, t1, partner)
    # extra receivers (round 3): per advert the index into `receivers` (0: the hub's own radio)
    receiver: np.ndarray | None = None
    receivers: list[str] = field(default_factory=lambda: ["hub"])
    outages: list[tuple[float, float, str]] = field(default_factory=list)  # (t0, t1, receiver)

    def __len__(self) -> int:
        return len(self.t)

    def adverts(self, extra: bool = False) -> Iterator[tuple]:
        """(t, address, rssi, mfr, svc) heard by the hub; with `extra` also those of the extra
        receivers, as (t, address, rssi, mfr, svc, receiver)."""
        pl, names = self.payloads, self.receivers
        rx = self.receiver.tolist() if self.receiver is not None else [0] * len(self.t)
        for t, r, i, k in zip(self.t.tolist(), self.rssi.tolist(), self.payload_index.tolist(), rx,
                              strict=True):
            a, m, s = pl[i]
            if k == 0:
                yield t, a, r, m, s
            elif extra:
                yield t, a, r, m, s, names[k]

    def events(self, extra: bool = True) -> Iterator[tuple]:
        """Adverts and door lines in time order: ("advert", t, address, rssi, mfr, svc[, receiver]),
        ("door", t, door, state) and ("door_health", t, door, ok), as the engine takes them.
        `extra=False`: the hub's own adverts only (a household with one receiver)."""
        adverts = (("advert", *a) for a in self.adverts(extra))
        doors = (("door", t, d, st) for t, d, st in self.doors)
        health = (("door_health", t, d, ok) for t, d, ok in self.door_health)
        yield from heapq.merge(adverts, doors, health, key=lambda e: e[1])

    def lines(self) -> Iterator[str]:
        for ev in self.events():
            d: dict
            if ev[0] == "door":
                d = {"t": round(ev[1], 3), "door": ev[2], "state": ev[3]}
            elif ev[0] == "door_health":
                d = {"t": round(ev[1], 3), "door": ev[2], "ok": ev[3]}
            else:
                _, t, a, r, m, s, *rx = ev
                d = {"t": round(t, 3), "address": a, "rssi": r}
                if rx:
                    d["receiver"] = rx[0]
                if m:
                    d["manufacturer_data"] = {str(k): v.hex() for k, v in m.items()}
                if s:
                    d["service_data"] = {k: v.hex() for k, v in s.items()}
            yield json.dumps(d)

    def write(self, path) -> None:
        with open(path, "w") as f:
            for line in self.lines():
                f.write(line + "\n")


def _random_mac(rng: random.Random, top: int) -> str:
    b = [rng.randrange(256) for _ in range(6)]
    b[0] = (b[0] & 0x3F) | (top << 6)
    return ":".join(f"{x:02X}" for x in b)


def rpa_for(irk_hex: str, rng: random.Random) -> str:
    """A resolvable private address for this IRK: prand with 0b01 on top, then ah(irk, prand)."""
    prand = bytes([(rng.randrange(256) & 0x3F) | 0x40, rng.randrange(256), rng.randrange(256)])
    return ":".join(f"{x:02X}" for x in prand + ah(bytes.fromhex(irk_hex), prand))


def payloads_for(tag: str, rng: random.Random, n_rot: int) -> list[tuple[str, dict, dict]]:
    """What the tag with this household-plan ID puts on air: (address, manufacturer_data,
    service_data) per advert form; an `irk:` tag gets `n_rot` rotating private addresses."""
    tid = parse_tag_id(tag)
    if tid.kind == "mac":
        return [(tid.key, {}, {})]
    if tid.kind == "irk":
        return [(rpa_for(tid.key[4:], rng), {}, {}) for _ in range(n_rot)]
    static = _random_mac(rng, 0b11)
    if tid.kind == "ibeacon":
        _, uuid, major, minor = tid.key.split(":")
        data = (b"\x02\x15" + bytes.fromhex(uuid.replace("-", "")) + int(major).to_bytes(2, "big")
                + int(minor).to_bytes(2, "big") + b"\xc5")
        return [(static, {APPLE: data}, {})]
    _, ns, inst = tid.key.split(":")
    return [(static, {}, {EDDYSTONE_UUID: b"\x00\xee" + bytes.fromhex(ns + inst) + b"\x00\x00"})]


class _Path:
    """Distance from the hub over time (piecewise linear) and body attenuation (piecewise constant).
    Also the bearing from the hub (the door at 0; rooms anywhere around) and the body towards an
    extra receiver, both from their own random stream `geo`, so the hub's adverts are the same
    with or without an extra receiver."""

    def __init__(self, rng: random.Random, radio: Radio, home: bool, geo: random.Random):
        self.rng, self.radio, self.geo = rng, radio, geo
        self.kt: list[float] = []
        self.kd: list[float] = []
        self.ka: list[float] = []
        self.bt: list[float] = [0.0]
        self.bdb: list[float] = [0.0]
        self.bdb2: list[float] = [0.0]  # towards the extra receiver: another side of the body
        self.fades: list[tuple[float, float, float]] = []  # (start, end, dB), disjoint, sorted
        self.d = rng.uniform(*ROOMS_M) if home else FAR_M
        self.a = self._room_bearing() if home else 0.0
        self._knot(0.0, self.d)

    def _room_bearing(self) -> float:
        return self.geo.uniform(-math.pi, math.pi)

    def _knot(self, t: float, d: float, a: float | None = None) -> None:
        if self.kt and t <= self.kt[-1]:
            t = self.kt[-1] + 1e-3
        self.kt.append(t)
        self.kd.append(d)
        self.ka.append(self.a if a is None else a)
        self.d, self.a = d, self.ka[-1]

    def _body(self, t: float) -> None:
        r = self.radio
        self.bt.append(t)
        self.bdb.append(self.rng.uniform(*r.body_db) if self.rng.random() < r.body_prob else 0.0)
        self.bdb2.append(self.geo.uniform(*r.body_db) if self.geo.random() < r.body_prob else 0.0)

    def stay_home(self, t0: float, t1: float) -> None:
        """Room to room until t1, starting at the current position at t0."""
        rng, t = self.rng, t0
        self._knot(t0, self.d)
        r = self.radio
        f = t0 + (rng.expovariate(r.fade_per_h / 3600.0) if r.fade_per_h > 0 else t1)
        while f < t1:
            end = min(t1, f + rng.uniform(*r.fade_s))
            self.fades.append((f, end, rng.uniform(*r.fade_db)))
            f = end + rng.expovariate(r.fade_per_h / 3600.0)
        while True:
            self._body(t)
            t += rng.expovariate(1 / 600.0)
            if t >= t1:
                break
            self._knot(t, self.d)
            nd = rng.uniform(*ROOMS_M)
            t += abs(nd - self.d) / rng.uniform(*self.radio.walk_speed) + 2.0
            if t >= t1:
                break
            self._knot(t, nd, self._room_bearing())
        self._knot(t1, self.d)

    def leave(self, t_door: float) -> None:
        """Walk to the door, cross it at t_door, lock it (0-5 s on the doorstep), walk away."""
        v = self.rng.uniform(*self.radio.walk_speed)
        self._knot(t_door - abs(DOOR_M - self.d) / v, self.d)
        self._body(t_door - abs(DOOR_M - self.d) / v)
        self._knot(t_door, DOOR_M, 0.0)
        t = t_door + 1.0 / v
        self._knot(t, STEP_M)
        t += self.rng.uniform(0.0, 5.0)
        self._knot(t, STEP_M)
        t += (WALK_M - STEP_M) / v
        self._knot(t, WALK_M)
        self._knot(t + 1, FAR_M)

    def errand(self, t_door: float, kind: str) -> float:
        """A door opening without leaving, the door reached at t_door: "visitor" (stand in the
        doorway, inside, 30-120 s) or "bin" (out to 10 m, back in through the door 60 s after
        crossing it). Returns when the partner is back at the door (inside)."""
        rng, v = self.rng, self.rng.uniform(*self.radio.walk_speed)
        self._knot(t_door - abs(DOOR_M - self.d) / v, self.d)
        self._body(t_door - abs(DOOR_M - self.d) / v)
        if kind == "visitor":
            self._knot(t_door, DOOR_M - 0.5, 0.0)
            back = t_door + rng.uniform(30.0, 120.0)
            self._knot(back, DOOR_M - 0.5)
        else:
            self._knot(t_door, DOOR_M, 0.0)
            self._knot(t_door + 2.0 / v, DOOR_M + 2.0)
            back = t_door + 60.0
            self._knot(back - 2.0 / v, DOOR_M + 2.0)
            self._knot(back, DOOR_M)
        self._knot(back + 4.0, rng.uniform(*ROOMS_M), self._room_bearing())
        return back

    def arrive(self, t_door: float) -> None:
        """Walk up the street, unlock the door (3-10 s on the doorstep), cross it at t_door."""
        v = self.rng.uniform(*self.radio.walk_speed)
        t = t_door - 1.0 / v - self.rng.uniform(3.0, 10.0)
        self._knot(t - (WALK_M - STEP_M) / v - 1, FAR_M)
        self._knot(t - (WALK_M - STEP_M) / v, WALK_M)
        self._body(t - (WALK_M - STEP_M) / v)
        self._knot(t, STEP_M)
        self._knot(t_door - 1.0 / v, STEP_M)
        self._knot(t_door, DOOR_M)
        self._knot(t_door + 4.0, self.rng.uniform(*ROOMS_M), self._room_bearing())


def _ar1(n: int, a: float, sigma: float, nprng) -> np.ndarray:
    """Stationary AR(1) of standard deviation sigma and lag-1 correlation a."""
    e = nprng.standard_normal(n) * sigma * np.sqrt(1 - a * a)
    if n:
        e[0] = nprng.standard_normal() * sigma
    return lfilter([1.0], [1.0, -a], e)


def _rssi(t: np.ndarray, path: _Path, radio: Radio, iv: float, nprng) -> np.ndarray:
    d = np.maximum(0.5, np.interp(t, path.kt, path.kd))
    body = np.asarray(path.bdb)[np.searchsorted(path.bt, t, side="right") - 1]
    fade = np.zeros(len(t))
    if path.fades:
        fs, fe, fdb = (np.asarray(x) for x in zip(*path.fades, strict=True))
        k = np.searchsorted(fs, t, side="right") - 1
        inside = (k >= 0) & (t < fe[np.maximum(k, 0)])
        fade[inside] = fdb[k[inside]]
    wall = radio.wall_db * np.clip((d - DOOR_M) / 0.5, 0.0, 1.0)  # the open door, then the wall
    sig = radio.sigma / np.sqrt(2)
    temporal = _ar1(len(t), float(np.exp(-iv / radio.shadow_tau)), sig, nprng)
    # spatial part: AR(1) over the distance walked (0.1 m grid): it stays put while the tag does
    walked = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(path.kd)))])
    u = np.interp(t, path.kt, walked) / 0.1
    grid = _ar1(int(u[-1]) + 2 if len(u) else 1, float(np.exp(-0.1 / radio.shadow_m)), sig, nprng)
    spatial = grid[np.rint(u).astype(np.int64)]
    return (radio.p0 - 10 * radio.exponent * np.log10(d) - body - fade - wall + temporal + spatial)


def _rssi_at(t: np.ndarray, path: _Path, radio: Radio, rx: Receiver, iv: float, nprng) -> np.ndarray:
    """The same tag as heard by the extra receiver `rx`: its own distance (from the bearing), path
    loss, interior walls, body and shadowing; the same exterior wall and deep fades."""
    d = np.interp(t, path.kt, path.kd)
    a = np.interp(t, path.kt, path.ka)
    x, y = d * np.cos(a), d * np.sin(a)
    d2 = np.maximum(0.5, np.hypot(x - rx.xy[0], y - rx.xy[1]))
    body = np.asarray(path.bdb2)[np.searchsorted(path.bt, t, side="right") - 1]
    fade = np.zeros(len(t))
    if path.fades:
        fs, fe, fdb = (np.asarray(q) for q in zip(*path.fades, strict=True))
        k = np.searchsorted(fs, t, side="right") - 1
        inside = (k >= 0) & (t < fe[np.maximum(k, 0)])
        fade[inside] = fdb[k[inside]]
    wall = radio.wall_db * np.clip((d - DOOR_M) / 0.5, 0.0, 1.0)
    inner = rx.inner_db * np.clip(d2 - rx.inner_m, 0.0, 1.0)
    sig = radio.sigma / np.sqrt(2)
    temporal = _ar1(len(t), float(np.exp(-iv / radio.shadow_tau)), sig, nprng)
    walked = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(np.asarray(path.kd) * np.cos(path.ka)),
                                                        np.diff(np.asarray(path.kd) * np.sin(path.ka))))])
    u = np.interp(t, path.kt, walked) / 0.1
    grid = _ar1(int(u[-1]) + 2 if len(u) else 1, float(np.exp(-0.1 / radio.shadow_m)), sig, nprng)
    spatial = grid[np.rint(u).astype(np.int64)]
    return rx.p0 - 10 * rx.exponent * np.log10(d2) - body - fade - wall - inner + temporal + spatial


def _outages(rx: Receiver, duration: float, rng: random.Random) -> list[tuple[float, float]]:
    out, rate = [], rx.outages_per_day / 86400.0
    t = rng.expovariate(rate) if rate > 0 else duration
    while t < duration:
        end = min(duration, t + rng.uniform(*rx.outage_s))
        out.append((t, end))
        t = end + rng.expovariate(rate)
    return out


DOOR_ID = "front"


def scripted(moves: Sequence[tuple[float, str, str]], tags: Mapping[str, Sequence[str] | str],
             duration: float, *, radio: Radio | None = None, seed: int = 1,
             interval: float = 1.0, start_home: Mapping[str, bool] | None = None,
             strangers_per_min: float = 0.0, door: bool = False,
             errands: Sequence[tuple[float, str, str]] = (), door_fails_at: float | None = None,
             door_miss: float = 0.0, receiver: Receiver | None = None) -> Trace:
    """A trace of the partners' tags following `moves` = [(t_seconds, partner, "home"|"away")],
    where t is when the partner crosses the front door. Partners start home unless `start_home`
    says otherwise. `strangers_per_min` adds passers-by's phones (random private addresses).
    `door` adds the exit door's contact; `errands` = [(t, partner, "visitor"|"bin")] door openings
    without leaving (t: the door reached; skipped unless the partner is home then). Failure cases:
    `door_fails_at` (the sensor dies: no events after it, and an ok=False line), `door_miss`
    (each door event lost with this probability). `receiver` adds a second receiver in the home
    (its adverts carry its name; the hub's adverts are the same as without it)."""
    radio = radio or Radio()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    drng = random.Random(seed * 7919 + 13)  # door timings: their own stream
    geo = random.Random(seed * 104729 + 7)  # bearings and the extra receiver: their own streams
    nprng2 = np.random.default_rng(seed * 104729 + 7)
    ts, rs, ps, ks = [], [], [], []
    payloads: list[tuple[str, dict, dict]] = []
    truth = sorted((float(t), p, s) for t, p, s in moves)
    doors: list[tuple[float, str]] = []
    brief: list[tuple[float, float, str]] = []
    for partner in sorted(tags):
        home = (start_home or {}).get(partner, True)
        path = _Path(rng, radio, home, geo)
        t_prev = 0.0
        steps = sorted([(t, "move", s) for t, p, s in truth if p == partner]
                       + [(float(t), "errand", k) for t, p, k in errands if p == partner])
        for t, what, s in steps:
            if what == "errand":
                near = any(abs(u - t) < 600.0 for u, w, _ in steps if w == "move")
                if not home or near or t < t_prev + 30.0 or t > duration - 200.0:
                    continue
                path.stay_home(t_prev, t - (abs(DOOR_M - path.d) / radio.walk_speed[0]) - 1)
                back = path.errand(t, s)
                if s == "visitor":
                    doors += [(t - drng.uniform(0.0, 1.0), "open"), (back, "closed")]
                else:
                    brief.append((t, back, partner))
                    if drng.random() < 0.5:  # left open while out
                        doors += [(t - drng.uniform(0.5, 2.0), "open"), (back + drng.uniform(1, 3), "closed")]
                    else:
                        doors += [(t - drng.uniform(0.5, 2.0), "open"), (t + drng.uniform(1, 3), "closed"),
                                  (back - drng.uniform(0, 1), "open"), (back + drng.uniform(2, 6), "closed")]
                t_prev = back + 5.0
                continue
            if (s == "home") == home:
                continue
            if home:
                path.stay_home(t_prev, t - (abs(DOOR_M - path.d) / radio.walk_speed[0]) - 1)
                path.leave(t)
                doors += [(t - drng.uniform(0.5, 2.0), "open"), (t + drng.uniform(1.0, 5.0), "closed")]
            else:
                path.arrive(t)
                doors += [(t - drng.uniform(0.0, 1.0), "open"), (t + drng.uniform(2.0, 6.0), "closed")]
            home, t_prev = s == "home", t + 5.0
        if home:
            path.stay_home(t_prev, duration)
        else:
            path._knot(duration, FAR_M)
        ids = tags[partner]
        for tag in ([ids] if isinstance(ids, str) else ids):
            pls = payloads_for(tag, rng, int(duration // RPA_ROTATE_S) + 1)
            base = len(payloads)
            payloads += pls
            iv = interval * rng.uniform(0.98, 1.02)
            n = int(duration / iv)
            t = rng.uniform(0, iv) + np.arange(n) * iv + nprng.uniform(0, 0.01, n)
            rssi = _rssi(t, path, radio, iv, nprng)
            keep = (rssi >= radio.sensitivity) & (nprng.random(n) >= radio.loss)
            ts.append(t[keep])
            rs.append(np.round(rssi[keep]).astype(np.int64))
            which = (t[keep] // RPA_ROTATE_S).astype(np.int64) % len(pls)
            ps.append(base + which)
            ks.append(np.zeros(int(keep.sum()), dtype=np.int64))
            if receiver is not None:  # the same adverts on air, heard (or not) by the other radio
                r2 = _rssi_at(t, path, radio, receiver, iv, nprng2)
                k2 = (r2 >= receiver.sensitivity) & (nprng2.random(n) >= receiver.loss)
                ts.append(t[k2])
                rs.append(np.round(r2[k2]).astype(np.int64))
                ps.append(base + (t[k2] // RPA_ROTATE_S).astype(np.int64) % len(pls))
                ks.append(np.ones(int(k2.sum()), dtype=np.int64))
    if strangers_per_min > 0:
        n = int(duration / 60 * strangers_per_min)
        for _ in range(max(1, n // 20)):
            payloads.append((_random_mac(rng, 0b01), {}, {}))
        k = len(payloads) - max(1, n // 20)
        ts.append(nprng.uniform(0, duration, n))
        rs.append(nprng.integers(-100, -70, n))
        ps.append(nprng.integers(k, len(payloads), n))
        ks.append(np.zeros(n, dtype=np.int64))
        if receiver is not None:
            ts.append(nprng2.uniform(0, duration, n))
            rs.append(nprng2.integers(-100, -70, n))
            ps.append(nprng2.integers(k, len(payloads), n))
            ks.append(np.ones(n, dtype=np.int64))
    outages = _outages(receiver, duration, geo) if receiver is not None else []
    t_all = np.concatenate(ts) if ts else np.zeros(0)
    k_all = np.concatenate(ks) if ks else np.zeros(0, dtype=np.int64)
    heard = np.ones(len(t_all), dtype=bool)
    for o0, o1 in outages:  # the extra receiver reports nothing at all
        heard &= ~((k_all == 1) & (t_all >= o0) & (t_all < o1))
    order = np.argsort(t_all, kind="stable")
    order = order[heard[order]]
    tr = Trace(t_all[order], np.concatenate(rs)[order], np.concatenate(ps)[order], payloads,
               truth, duration, brief=sorted(brief))
    if receiver is not None:
        tr.receiver, tr.receivers = k_all[order], ["hub", receiver.name]
        tr.outages = [(o0, o1, receiver.name) for o0, o1 in outages]
    if door:
        tr.doors = _door_lines(doors, drng, door_fails_at, door_miss)
        if door_fails_at is not None:
            tr.door_health = [(door_fails_at, DOOR_ID, False)]
    return tr


def _door_lines(doors: list[tuple[float, str]], rng: random.Random, fails_at: float | None,
                miss: float) -> list[tuple[float, str, str]]:
    """The contact's events: two partners at the door together give one open and one close
    (a state repeated is not an event), lost ones dropped, nothing after the sensor died."""
    out: list[tuple[float, str, str]] = []
    is_open = 0
    for t, st in sorted(doors):
        is_open += 1 if st == "open" else -1
        state = "open" if is_open > 0 else "closed"
        if (out and out[-1][2] == state) or (fails_at is not None and t >= fails_at):
            continue
        if miss and rng.random() < miss:
            continue
        out.append((t, DOOR_ID, state))
    return out


def week_schedule(partners: Iterable[str], days: int = 7, seed: int = 1) -> list[tuple[float, str, str]]:
    """A household's week: out to work in the morning, back in the evening, an evening errand on
    some days, and now and then a 20-40 minute walk (a time-out). Everyone home at night."""
    rng = random.Random(seed)
    moves: list[tuple[float, str, str]] = []
    for p in partners:
        for day in range(days):
            d0 = day * 86400.0
            outings = []
            if rng.random() < 0.75:
                leave = d0 + rng.gauss(8 * 3600, 1800)
                outings.append((leave, leave + rng.uniform(7, 10) * 3600))
            if rng.random() < 0.4:
                s = d0 + rng.uniform(19, 20) * 3600
                outings.append((s, s + rng.uniform(0.5, 1.5) * 3600))
            if rng.random() < 0.3:
                s = d0 + rng.uniform(21, 22) * 3600
                outings.append((s, s + rng.uniform(20, 40) * 60))
            last = -1.0
            for a, b in sorted(outings):
                if a > last + 600:  # outings never overlap: home at least 10 minutes between
                    moves += [(a, p, "away"), (b, p, "home")]
                    last = b
    return sorted(moves)


def week_errands(partners: Iterable[str], days: int = 7, seed: int = 1) -> list[tuple[float, str, str]]:
    """Door openings without leaving: a visitor or a parcel at the door about twice a day, the bin
    taken out about every other day (daytime, 8:00-22:00); skipped when the partner is out."""
    rng = random.Random(seed * 31 + 5)
    out = []
    for p in partners:
        for day in range(days):
            for kind, per_day in (("visitor", 1.0), ("bin", 0.5)):
                for _ in range(sum(rng.random() < per_day for _ in range(2))):
                    out.append((day * 86400.0 + rng.uniform(8, 22) * 3600, p, kind))
    return sorted(out)


def simulated_week(tags: Mapping[str, Sequence[str] | str], *, days: int = 7, seed: int = 1,
                   radio: Radio | None = None, interval: float = 1.0,
                   strangers_per_min: float = 0.0, door: bool = False,
                   door_fails_at: float | None = None, door_miss: float = 0.0,
                   receiver: Receiver | None = None) -> Trace:
    """A week of `week_schedule`; with `door`, the exit door's contact and `week_errands`."""
    moves = week_schedule(sorted(tags), days, seed)
    errands = week_errands(sorted(tags), days, seed) if door else ()
    return scripted(moves, tags, days * 86400.0, radio=radio, seed=seed, interval=interval,
                    strangers_per_min=strangers_per_min, door=door, errands=errands,
                    door_fails_at=door_fails_at, door_miss=door_miss, receiver=receiver)
