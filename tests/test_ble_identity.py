"""Tag identity: the four ID forms, the spec's ah() test vector, RPA resolution and its cache."""
import random

import pytest

from ble.identity import Resolver, TagIdError, ah, parse_tag_id
from sim.ble_traces import payloads_for, rpa_for

IRK = "ec0234a357c8ad05341010a60a397d9b"
BEACON = "ibeacon:11111111-2222-3333-4444-555555555555:7:300"
EDDY = "eddystone:00112233445566778899:aabbccddeeff"


def test_ah_matches_the_core_spec_test_vector():
    # Bluetooth Core Vol 3 Part H, Appendix D.7: IRK ec0234a3..., prand 708194 -> hash 0dfbaa
    assert ah(bytes.fromhex(IRK), bytes.fromhex("708194")).hex() == "0dfbaa"


@pytest.mark.parametrize("bad", ["AA:BB:CC:DD:EE", "ibeacon:xyz:1:2", "irk:1234",
                                 "ibeacon:11111111-2222-3333-4444-555555555555:70000:1", ""])
def test_bad_tag_ids_are_refused_with_a_value_error(bad):
    with pytest.raises(TagIdError) as e:
        parse_tag_id(bad)
    assert isinstance(e.value, ValueError)


def test_each_id_form_matches_its_adverts_and_nothing_else():
    rng = random.Random(3)
    r = Resolver([parse_tag_id(t) for t in ("aa:bb:cc:dd:ee:01", BEACON, EDDY, f"irk:{IRK}")])
    assert r.match("AA:BB:CC:DD:EE:01") == "AA:BB:CC:DD:EE:01"
    for tag in (BEACON, EDDY):
        (addr, mfr, svc), = payloads_for(tag, rng, 1)
        assert r.match(addr, mfr, svc) == parse_tag_id(tag).key
    other = payloads_for("ibeacon:11111111-2222-3333-4444-555555555555:7:301", rng, 1)[0]
    assert r.match(*other) is None
    assert r.match(rpa_for(IRK, rng)) == f"irk:{IRK}"
    assert r.match(rpa_for("00" * 16, rng)) is None          # someone else's phone
    assert r.match("AA:BB:CC:DD:EE:02") is None


def test_rpa_cache_holds_only_resolved_addresses_and_is_bounded():
    rng = random.Random(4)
    r = Resolver([parse_tag_id(f"irk:{IRK}")], cache_size=8)
    for _ in range(200):
        assert r.match(rpa_for("11" * 16, rng)) is None     # strangers leave no entry
    assert r.cached_addresses() == 0
    mine = [rpa_for(IRK, rng) for _ in range(20)]
    assert all(r.match(a) == f"irk:{IRK}" for a in mine)
    assert r.cached_addresses() == 8
