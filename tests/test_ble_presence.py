"""The pure presence engine on hand-made and generated traces: fast departure on a walk-away,
no false away while a tag is weak or silent at home, latencies and false aways beside a 300 s
fixed timeout on the same trace, scanner down -> unknown, missing tags, unknown devices never kept."""
import gc
import random
import types

from bench.ble_bench import FixedTimeout
from bench.stats import percentile
from ble.presence import PresenceConfig, PresenceEngine, Transition, run_adverts
from sim.ble_eval import score
from sim.ble_traces import Radio, scripted, simulated_week

TAGS = {"a": "AA:BB:CC:DD:EE:01", "b": "irk:ec0234a357c8ad05341010a60a397d9b"}
A, NEIGHBOUR = "AA:BB:CC:DD:EE:01", "11:22:33:44:55:66"


def reachable_strings(root, skip: tuple = ()) -> list[str]:
    """Every str reachable from `root` through object references (not through modules, classes or
    functions' globals, nor through objects of the `skip` types)."""
    stop = (bytes, int, float, types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.CodeType, *skip)
    seen, out, todo = set(), [], [root]
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, str):
            out.append(o)
        elif not isinstance(o, stop):
            todo.extend(gc.get_referents(o))
    return out


def _home_hour(seed=1):
    """An hour of partner a's tag at home around -70 dBm (1 s interval, 30 % loss), with a
    neighbour's device every 2 s so that silence is trusted. Returns (adverts, rng)."""
    rng = random.Random(seed)
    adv = [(t + 0.5, NEIGHBOUR, -85) for t in range(0, 3600, 2)]
    adv += [(float(t), A, -70 + rng.gauss(0, 3)) for t in range(3600) if rng.random() > 0.3]
    return adv, rng


def _then(adv, rng, t0, t1, level):
    """Adverts of the tag at level(t) from t0 to t1 (30 % loss) and the neighbour throughout."""
    adv += [(t + 0.5, NEIGHBOUR, -85) for t in range(int(t0), int(t1), 2)]
    for t in range(int(t0), int(t1)):
        r = level(t)
        if r is not None and rng.random() > 0.3:
            adv.append((float(t), A, r + rng.gauss(0, 1.5)))
    return sorted(adv)


def _away_at(adv, end):
    e = PresenceEngine({"a": [A]}, now=0.0)
    out = run_adverts(e, adv, end=end)
    assert [x.presence for x in out][:1] == ["home"]
    aways = [x.t for x in out if x.presence == "away"]
    return aways[0] if aways else None


def test_walk_away_is_detected_fast():
    """Walking out: the level falls steadily (-70 -> -96 over 20 s, door at 3612 s), then nothing."""
    adv, rng = _home_hour()
    adv = _then(adv, rng, 3600, 3800, lambda t: -70 - 1.3 * (t - 3600) if t < 3620 else None)
    away = _away_at(adv, 3800)
    assert away is not None and away - 3612 <= 45.0, away
    assert away > 3620  # not before the tag went quiet


def test_step_to_silence_at_home_takes_the_slow_path():
    """The same silence after a step from the room's level (a drawer): no fast away; away only
    after the slow leave time (a tag that stays silent for minutes is taken for gone)."""
    adv, rng = _home_hour()
    adv = _then(adv, rng, 3600, 4000, lambda t: -70 if t < 3620 else None)
    away = _away_at(adv, 4000)
    last = max(a[0] for a in adv if a[1] == A)
    assert away is not None and away - last >= 80.0, (away, last)


def test_long_weak_stretch_at_home_is_no_away():
    """Five minutes in a drawer or under someone: heard only now and then (-96..-99 dBm, gaps up
    to 60 s). A 30 s fixed timeout calls that away; we must not."""
    adv, rng = _home_hour()
    adv = _then(adv, rng, 3600, 4000, lambda t: -70 if t < 3620 or t >= 3920 else None)
    adv = sorted(adv + [(3620.0 + k, A, -96.0 - k % 4) for k in (25, 70, 110, 170, 200, 255, 300)])
    e = PresenceEngine({"a": [A]}, now=0.0)
    out = run_adverts(e, adv, end=4000)
    assert [x.presence for x in out] == ["home"]
    base = FixedTimeout({"a": A}, 30.0)
    fixed = run_adverts(base, adv, end=4000)
    assert "away" in [x.presence for x in fixed]  # the stretch is a real test


def test_walk_away_signature_that_stayed_home_switches_the_fast_path_off():
    """A fall that looked like walking away, then the tag back at home: the next such fall gets the
    slow leave time (this home's rooms fool the trend test)."""
    adv, rng = _home_hour()
    fall = lambda t0: (lambda t: -70 - 1.3 * (t - t0) if t < t0 + 20 else None)
    adv = _then(adv, rng, 3600, 3645, fall(3600))
    adv = _then(adv, rng, 3645, 3700, lambda t: -70)           # back after 25 s of silence
    adv = _then(adv, rng, 3700, 3900, fall(3700))
    away = _away_at(adv, 3900)
    last = max(a[0] for a in adv if a[1] == A)
    assert away is None or away - last >= 80.0, (away, last)


def _run(trace, tags=TAGS):
    e = PresenceEngine(tags, now=0.0)
    return e, run_adverts(e, trace.adverts(), end=trace.duration)


def test_generated_walks_all_seen_with_quick_arrivals():
    moves = []
    for k in range(12):
        t0 = 600 + k * 1500
        moves += [(t0, "a", "away"), (t0 + 700, "a", "home")]
    tr = scripted(moves, TAGS, 19000, radio=Radio(sigma=6, loss=0.3), strangers_per_min=20, seed=5)
    _, out = _run(tr)
    s = score(out, tr.truth, tr.duration, ["a", "b"])
    assert s.missed_departures == 0 and s.missed_arrivals == 0
    assert percentile(s.arrivals, 95) <= 5.0  # issue 5's arrival target
    assert max(s.departures) <= 300.0 + 30.0


def test_two_simulated_days_few_false_aways_beside_the_fixed_timeouts():
    """The realistic home (drawers, bodies, far rooms): a 30 s timeout flaps all day; we stay near
    the 300 s one (ours may lose a few where a silence outgrows the learned leave time)."""
    tr = simulated_week(TAGS, days=2, seed=11, radio=Radio(sigma=6, loss=0.3), strangers_per_min=20)
    _, out = _run(tr)
    s = score(out, tr.truth, tr.duration, ["a", "b"])
    f300 = score(run_adverts(FixedTimeout(TAGS, 300.0), tr.adverts(), end=tr.duration), tr.truth,
                 tr.duration, ["a", "b"])
    f30 = score(run_adverts(FixedTimeout(TAGS, 30.0), tr.adverts(), end=tr.duration), tr.truth,
                tr.duration, ["a", "b"])
    assert s.missed_departures == 0
    assert s.false_aways <= f300.false_aways + 2, (s, f300)
    assert f30.false_aways >= 10 * max(1, s.false_aways), (s, f30)
    assert percentile(s.departures, 50) < percentile(f300.departures, 50)


def test_no_false_away_over_two_days_without_deep_fades_or_body_blocking():
    """A home where the tag is always audible (no drawer, no body in the way): zero false aways,
    and once the home is learned (the first night) departures are seen within issue 5's 45 s."""
    radio = Radio(sigma=6, loss=0.3, fade_per_h=0.0, body_prob=0.0)
    tr = simulated_week(TAGS, days=2, seed=11, radio=radio, strangers_per_min=20)
    _, out = _run(tr)
    s = score(out, tr.truth, tr.duration, ["a", "b"])
    assert s.false_aways == 0, s
    assert s.missed_departures == 0
    assert max(s.departures) <= 45.0, s.departures


def test_scanner_down_makes_everyone_unknown_never_away():
    e = PresenceEngine(TAGS, now=0.0)
    for t in range(10):
        e.advert(float(t), "AA:BB:CC:DD:EE:01", -60)
    assert e.presence()["a"] == "home"
    out = e.set_scanner(10.0, False)
    assert {(x.partner, x.presence) for x in out} == {("a", "unknown")}
    for t in range(11, 600):
        assert all(x.presence != "away" for x in e.tick(float(t)))
    assert e.presence() == {"a": "unknown", "b": "unknown"}
    e.set_scanner(600.0, True)
    e.advert(601.0, "AA:BB:CC:DD:EE:01", -60)
    e.advert(602.0, "AA:BB:CC:DD:EE:01", -61)
    assert e.presence()["a"] == "home"


def test_silent_radio_is_not_taken_for_absence():
    """Every advert stops (a stalled BlueZ): the partner becomes unknown, not away."""
    # a leave time shorter than the 90 s stall restart, as a learned quiet home has
    e = PresenceEngine(TAGS, now=0.0, config=PresenceConfig(leave_initial=60.0))
    for t in range(60):
        e.advert(float(t), "AA:BB:CC:DD:EE:01", -70)
        e.advert(t + 0.5, "11:22:33:44:55:66", -80)   # a neighbour's device
    states = [x.presence for t in range(60, 148) for x in e.tick(float(t)) if x.partner == "a"]
    assert states == ["unknown"]


def test_tag_silent_a_day_while_expected_home_is_a_fault_not_an_absence():
    e = PresenceEngine({"a": ["AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02"]}, now=0.0)
    for t in range(0, 25 * 3600, 2):
        e.advert(float(t), "AA:BB:CC:DD:EE:01", -65)
        e.tick(float(t))
    assert e.presence()["a"] == "home"
    # tag 1 heard all day: a is around, so tag 2's silence is a flat battery or a lost tag
    assert e.missing_tags(25 * 3600.0, lambda p: True) == [("a", 2)]
    assert e.missing_tags(25 * 3600.0, lambda p: False) == [("a", 2)]


def test_all_of_a_partners_tags_silent_is_an_absence_unless_other_evidence_says_home():
    """Issue 13: a weekend away raised the tag supervision fault."""
    e = PresenceEngine({"a": ["AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02"]}, now=0.0)
    e.advert(1.0, "AA:BB:CC:DD:EE:01", -65)
    e.advert(1.0, "AA:BB:CC:DD:EE:02", -65)
    e.tick(1.0)
    assert e.missing_tags(60 * 3600.0, lambda p: False) == []          # away for the weekend
    assert e.missing_tags(60 * 3600.0, lambda p: True) == [("a", 1), ("a", 2)]   # wearable: near


def test_unknown_devices_leave_nothing_in_engine_state(caplog):
    tr = scripted([], TAGS, 600, strangers_per_min=600, seed=2)
    strangers = {a for a, _, _ in tr.payloads} - {"AA:BB:CC:DD:EE:01"}
    caplog.set_level("DEBUG")
    e, _ = _run(tr)
    dump = repr(vars(e)) + repr([vars(t) for t in e._trackers.values()]) + repr(vars(e.resolver))
    dump += caplog.text
    irk_addresses = set(e.resolver._cache)
    assert e.adverts_seen > 5000
    assert not any(a in dump for a in strangers - irk_addresses)
    # and nowhere deeper in the engine (trackers' deques, histograms, the resolver's cache)
    kept = reachable_strings(e)
    assert "AA:BB:CC:DD:EE:01" in kept                      # the walk does reach the keys
    assert not any(a in s for s in kept for a in strangers - irk_addresses)


def test_score_counts_the_time_a_partner_at_home_was_shown_away():
    """A false away is scored by its count and by how long it lasted (a departure's own away and
    the minute around the door do not count)."""
    T = lambda t, s: Transition(t, "a", s)
    truth = [(1000.0, "a", "away"), (2000.0, "a", "home")]
    out = [T(0, "home"), T(300, "away"), T(420, "home"), T(1030, "away"), T(2003, "home"),
           T(5000, "away")]
    s = score(out, truth, 6000.0, ["a"])
    assert s.false_aways == 2
    assert s.false_away_s == 120.0 + 1000.0
    assert s.departures == [30.0] and s.arrivals == [3.0]
