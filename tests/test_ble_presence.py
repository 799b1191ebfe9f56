"""The pure presence engine on generated traces: latencies, no false away over simulated days,
scanner down -> unknown, missing tags, unknown devices never kept."""
from ble.evaluate import score
from ble.presence import PresenceEngine, run_adverts
from ble.traces import Radio, scripted, simulated_week
from bench.stats import percentile

TAGS = {"a": "AA:BB:CC:DD:EE:01", "b": "irk:ec0234a357c8ad05341010a60a397d9b"}


def _run(trace, tags=TAGS):
    e = PresenceEngine(tags, now=0.0)
    return e, run_adverts(e, trace.adverts(), end=trace.duration)


def test_departures_and_arrivals_are_seen_quickly_on_generated_walks():
    moves = []
    for k in range(12):
        t0 = 600 + k * 1500
        moves += [(t0, "a", "away"), (t0 + 700, "a", "home")]
    tr = scripted(moves, TAGS, 19000, radio=Radio(sigma=6, loss=0.3), strangers_per_min=20, seed=5)
    _, out = _run(tr)
    s = score(out, tr.truth, tr.duration, ["a", "b"])
    assert s.missed_departures == 0 and s.missed_arrivals == 0
    assert percentile(s.arrivals, 95) <= 5.0
    assert percentile(s.departures, 95) <= 90.0
    assert s.false_aways == 0


def test_no_false_away_over_two_simulated_days_at_sigma_6_and_30_percent_loss():
    tr = simulated_week(TAGS, days=2, seed=11, radio=Radio(sigma=6, loss=0.3), strangers_per_min=20)
    _, out = _run(tr)
    s = score(out, tr.truth, tr.duration, ["a", "b"])
    assert s.false_aways == 0, s
    assert s.missed_departures == 0


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
    e = PresenceEngine(TAGS, now=0.0)
    for t in range(60):
        e.advert(float(t), "AA:BB:CC:DD:EE:01", -70)
        e.advert(t + 0.5, "11:22:33:44:55:66", -80)   # a neighbour's device
    states = [x.presence for t in range(60, 89) for x in e.tick(float(t)) if x.partner == "a"]
    assert states == ["unknown"]


def test_tag_silent_a_day_while_expected_home_is_a_fault_not_an_absence():
    e = PresenceEngine({"a": ["AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02"]}, now=0.0)
    for t in range(0, 25 * 3600, 2):
        e.advert(float(t), "AA:BB:CC:DD:EE:01", -65)
        e.tick(float(t))
    assert e.presence()["a"] == "home"
    assert e.missing_tags(25 * 3600.0, lambda p: True) == [("a", 2)]
    assert e.missing_tags(25 * 3600.0, lambda p: False) == []


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
