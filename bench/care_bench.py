"""A simulated month at the care organisation (issue 18, docs/care.md): two household Mosquittos
bridged over TLS to the organisation's Mosquitto, the organisation's service (org/service.py)
with its key and store. For 30 simulated days each household has its evenings' time-outs; what
its consent allows is summarised (mqtt.shared.summarise, as the household's consent filter does),
sealed to the organisation's key and published on its `share/summary`. Halfway, partner b of
household one withdraws `call`. Prints: summaries delivered, b's call entries withheld (removed at
the organisation, never sent), bytes on the organisation's broker that were plaintext, the
end-to-end latency (household broker to the organisation's store), and whether the store holds
exactly the consented data.
"""
from __future__ import annotations

import json
import random
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.stats import percentile
from mqtt.bridge_config import write_bridge
from mqtt.broker_process import PrivateBroker
from mqtt.org_broker import ROOT, OrgBrokerProcess
from mqtt.schemas import Event
from mqtt.seal import recipient, seal
from mqtt.shared import CATEGORIES, ConsentChange, ConsentSet, SharedTimeout, SharedTopics, restrict, summarise
from org.keys import create_key, load_key
from org.service import KnownHouseholds, OrgService, load_link
from org.store import OrgStore, Summary

HOUSEHOLDS = ("home-one", "home-two")
DAYS = 30
WITHDRAW_DAY = 15
START = datetime(2027, 1, 4, tzinfo=UTC)
LATENCY_TARGET_MS = 2000.0
ALL = ConsentSet(a=frozenset(CATEGORIES), b=frozenset(CATEGORIES))


def _evening(rng: random.Random, day: int) -> list[Event]:
    """One evening's time-out: a rising thermometer, calls for either partner, an early return,
    the evaluation with topics kept now and then."""
    t0, tid = START + timedelta(days=day, hours=20, minutes=rng.randint(0, 120)), uuid.uuid4()

    def at(minute: float, type_: str, category: str, partner=None, **data) -> Event:
        return Event(ts=t0 + timedelta(minutes=minute), type=type_, category=category,
                     partner=partner, timeout_id=None if type_ == "suggestion" else tid, data=data)
    minutes = float(rng.choice((30, 30, 45, 60)))
    out = [at(-2, "suggestion", "sensing", thermometer=rng.randint(5, 9)),
           at(0, "started", "procedure", rng.choice("ab"), source="panel")]
    for p in "ab":
        if rng.random() < 0.5:
            out.append(at(3, "call_result", "call", p,
                          outcome=rng.choice(("acknowledged", "no_answer"))))
    if rng.random() < 0.3:
        out.append(at(8, "returned_early", "presence", rng.choice("ab"), minutes=8.0))
    topics = {"topics_for_session": rng.randint(1, 3), "session_date": "2027-02-15"} \
        if rng.random() < 0.3 else {}
    out += [at(minutes - 1, "evaluation_outcome", "evaluation", long_enough=True,
               decided_by="agreed", **topics),
            at(minutes, "ended", "procedure", outcome="evaluated", rounds=1, minutes=minutes)]
    return out


class _TimedStore(OrgStore):
    """The organisation's store, noting when each time-out's summary was stored (latency)."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.stored_at: dict[uuid.UUID, float] = {}

    def put(self, item: Summary) -> None:
        super().put(item)
        if isinstance(item, SharedTimeout):
            self.stored_at.setdefault(item.timeout_id, time.monotonic())


class _Paho:
    def __init__(self, port: int, user: str, password: str, *, cafile: Path | None = None,
                 subscribe: str | None = None):
        self.received: list[bytes] = []
        self.lock, self.ready = threading.Lock(), threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
        c.username_pw_set(user, password)
        if cafile:
            c.tls_set(ca_certs=str(cafile))
        c.on_connect = lambda cl, *a: cl.subscribe(subscribe, 1) if subscribe else self.ready.set()
        c.on_subscribe = lambda *a: self.ready.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.c = c

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.received.append(bytes(msg.payload))

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _view(items: list[Summary]) -> list[str]:
    return sorted(i.model_dump_json(exclude={"id"}) for i in items)


def _b_calls(items: list[Summary]) -> int:
    return sum(1 for i in items if isinstance(i, SharedTimeout)
               for c in i.calls or [] if c.partner == "b")


def _wait(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def month(work: Path, seed: int = 18) -> dict[str, float]:
    rng = random.Random(seed)
    org = OrgBrokerProcess(work / "org", HOUSEHOLDS, extra_acl="\nuser audit\ntopic read #\n",
                           extra_users=("audit",)).start()
    homes: dict[str, PrivateBroker] = {}
    made: list[_Paho] = []
    store = _TimedStore(work / "org.sqlite3")
    service: OrgService | None = None
    try:
        for h in HOUSEHOLDS:
            homes[h] = PrivateBroker(work / h, h)
            write_bridge(homes[h].directory, h, org.org_file(h))
            homes[h].start()
        if not _wait(lambda: all(f"as {h} (" in org.log_path.read_text(errors="replace")
                                 for h in HOUSEHOLDS), 20):
            raise RuntimeError(f"the bridges did not connect: {org.log_tail()}")
        create_key(work / "age.key")
        key = load_key(work / "age.key")
        to = recipient(str(key.to_public()))
        link = load_link(org.directory / "service.toml")
        service = OrgService(store, key, known=KnownHouseholds(link.households).__contains__,
                             prefix=link.prefix, link=link, clock=lambda: START + timedelta(days=DAYS))
        service.start()
        audit = _Paho(org.port, "audit", org.creds("audit").password, cafile=org.cafile,
                      subscribe=f"{ROOT}/+/share/summary")
        made.append(audit)
        bridges = {h: _Paho(homes[h].port, "bridge", homes[h].creds("bridge").password)
                   for h in HOUSEHOLDS}
        made += bridges.values()
        if not (service.connected.wait(10) and audit.ready.wait(10)
                and all(b.ready.wait(10) for b in bridges.values())):
            raise RuntimeError("a client did not connect")

        sent: dict[str, list[Summary]] = {h: [] for h in HOUSEHOLDS}
        sent_at: dict[uuid.UUID, float] = {}
        withheld_unsent = 0
        consent = dict.fromkeys(HOUSEHOLDS, ALL)
        for day in range(DAYS):
            for h in HOUSEHOLDS:
                if h == HOUSEHOLDS[0] and day == WITHDRAW_DAY:
                    consent[h] = ALL.without("b", ["call"])
                    change = ConsentChange(household=h, partner="b", withdrawn=["call"],
                                           consent=consent[h])
                    bridges[h].c.publish(f"timeout/{h}/share/summary",
                                         seal(change, h, "consent", to).model_dump_json(), qos=1)
                for _ in range(rng.choice((0, 1, 1, 1, 2))):
                    events = _evening(rng, day)
                    items = summarise(h, events, consent[h])
                    withheld_unsent += _b_calls(summarise(h, events, ALL)) - _b_calls(items)
                    for item in items:
                        kind = "timeout" if isinstance(item, SharedTimeout) else "topics"
                        if isinstance(item, SharedTimeout):
                            sent_at[item.timeout_id] = time.monotonic()
                        sent[h].append(item)
                        bridges[h].c.publish(f"timeout/{h}/share/summary",
                                             seal(item, h, kind, to).model_dump_json(), qos=1)
                time.sleep(0.05)   # a day's messages, then the next day
        total = sum(len(v) for v in sent.values())
        if not _wait(lambda: service.counts["stored"] + service.counts["withheld"] >= total
                     and service.counts["consent"] == 1, 60):
            raise RuntimeError(f"not everything arrived: {dict(service.counts)} of {total}")

        one, two = HOUSEHOLDS
        b_calls_first_half = _b_calls(sent[one])
        expected = {one: [r for s in sent[one] if (r := restrict(s, consent[one]))],
                    two: sent[two]}
        exact = all(_view(store.summaries(h)) == _view(expected[h]) for h in HOUSEHOLDS)
        markers = [str(i.timeout_id).encode() for v in sent.values() for i in v
                   if isinstance(i, SharedTimeout)] + [b'"minutes"', b'"calls"', b'"count"',
                                                       b'"withdrawn"']
        with audit.lock:
            wire = list(audit.received)
        plaintext = sum(len(p) for p in wire if any(m in p for m in markers))
        sealed_only = all(set(json.loads(p)) == {"v", "id", "ts", "household", "kind", "age"}
                          for p in wire)
        lat = [(store.stored_at[t] - sent_at[t]) * 1000 for t in sent_at if t in store.stored_at]
        return {
            "sent": total, "delivered": service.counts["stored"] + service.counts["withheld"],
            "stored_one": len(store.summaries(one)), "stored_two": len(store.summaries(two)),
            "topics": sum(isinstance(i, SharedTopics) for v in sent.values() for i in v),
            "b_calls_removed": b_calls_first_half, "b_calls_unsent": withheld_unsent,
            "b_calls_left": _b_calls(store.summaries(one)),
            "wire_msgs": len(wire), "wire_bytes": sum(len(p) for p in wire),
            "plaintext_bytes": plaintext, "sealed_only": float(sealed_only),
            "exact": float(exact), "refused": sum(v for k, v in service.counts.items()
                                                  if k.startswith("refused")),
            "lat_p50": percentile(lat, 50), "lat_p99": percentile(lat, 99),
        }
    finally:
        if service is not None:
            service.stop()
        for p in made:
            p.close()
        store.close()
        for b in homes.values():
            b.kill()
        org.kill()


def run() -> bool:
    print("\n== care organisation: a simulated month, two households, a withdrawal halfway ==")
    with tempfile.TemporaryDirectory(prefix="care-bench-") as d:
        try:
            r = month(Path(d))
        except RuntimeError as e:
            print(f"  FAILED: {e}")
            return False
    print(f"  summaries sent {r['sent']:.0f} ({r['topics']:.0f} of them topics kept), delivered "
          f"and opened {r['delivered']:.0f}; held: household one {r['stored_one']:.0f}, "
          f"household two {r['stored_two']:.0f}; refused {r['refused']:.0f}")
    print(f"  partner b of household one withdrew `call` on day {WITHDRAW_DAY}: b's call entries "
          f"removed at the organisation {r['b_calls_removed']:.0f}, never sent "
          f"{r['b_calls_unsent']:.0f}, left at the organisation {r['b_calls_left']:.0f}")
    print(f"  on the organisation's broker: {r['wire_msgs']:.0f} messages, {r['wire_bytes']:.0f} "
          f"bytes, all sealed envelopes: {'yes' if r['sealed_only'] else 'NO'}; plaintext bytes "
          f"{r['plaintext_bytes']:.0f}")
    print(f"  household broker -> organisation's store: median {r['lat_p50']:.0f} ms, "
          f"p99 {r['lat_p99']:.0f} ms (target median < {LATENCY_TARGET_MS:.0f} ms)")
    print(f"  the store holds exactly the consented data: {'yes' if r['exact'] else 'NO'}")
    return bool(r["exact"] and r["sealed_only"] and r["plaintext_bytes"] == 0
                and r["delivered"] == r["sent"] and r["b_calls_left"] == 0
                and r["lat_p50"] < LATENCY_TARGET_MS)


if __name__ == "__main__":
    import sys
    sys.exit(0 if run() else 1)
