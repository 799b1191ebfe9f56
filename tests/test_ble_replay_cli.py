"""presence-replay: transitions as text and JSON lines; bad input -> exit 2 with one sentence."""
import json

from ble.replay_cli import main
from sim.ble_traces import scripted

A = "AA:BB:CC:DD:EE:01"


def test_json_transitions_follow_the_walks(tmp_path, capsys):
    tr = scripted([(100, "a", "away"), (900, "a", "home")], {"a": A}, 1200, seed=4,
                  strangers_per_min=20)
    path = tmp_path / "t.jsonl"
    tr.write(path)
    assert main([str(path), "--tag", f"a={A}", "--json"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["presence"] for o in out] == ["home", "away", "home"]
    # a trace of 20 minutes teaches nothing: the new-hub leave time (300 s) applies
    assert 100 < out[1]["t"] < 100 + 330 and 880 < out[2]["t"] < 905
    assert set(out[0]) == {"t", "partner", "presence"}


def test_plain_text_by_default(tmp_path, capsys):
    tr = scripted([], {"a": A}, 30, seed=4)
    tr.write(tmp_path / "t.jsonl")
    assert main([str(tmp_path / "t.jsonl"), "--tag", f"a={A}"]) == 0
    assert "partner a  home" in capsys.readouterr().out


def test_garbled_line_is_refused_with_its_line_number(tmp_path, capsys):
    p = tmp_path / "t.jsonl"
    p.write_text(f'{{"t": 1, "address": "{A}", "rssi": -60}}\n{{"t": 2, "address": \n')
    assert main([str(p), "--tag", f"a={A}"]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and err.count("\n") == 1


def test_missing_field_bad_tag_and_missing_file(tmp_path, capsys):
    p = tmp_path / "t.jsonl"
    p.write_text('{"t": 1, "rssi": -60}\n')
    assert main([str(p), "--tag", f"a={A}"]) == 2
    assert "line 1" in capsys.readouterr().err
    assert main([str(p), "--tag", "a=ibeacon:nope"]) == 2
    assert "ibeacon:UUID:MAJOR:MINOR" in capsys.readouterr().err
    assert main([str(tmp_path / "none.jsonl"), "--tag", f"a={A}"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_trace_of_the_tag_alone_goes_unknown_before_away(tmp_path, capsys):
    """Without any other device on air, silence cannot be told from a stalled radio."""
    tr = scripted([(100, "a", "away")], {"a": A}, 600, seed=4)
    tr.write(tmp_path / "t.jsonl")
    with open(tmp_path / "t.jsonl", "a") as f:  # one neighbour's phone marks the end of the trace
        f.write('{"t": 600, "address": "11:22:33:44:55:66", "rssi": -90}\n')
    assert main([str(tmp_path / "t.jsonl"), "--tag", f"a={A}", "--json"]) == 0
    out = [json.loads(x)["presence"] for x in capsys.readouterr().out.splitlines()]
    assert out == ["home", "unknown", "away"]


def test_door_and_receiver_lines_make_a_door_fused_replay(tmp_path, capsys):
    tr = scripted([(300, "a", "away"), (900, "a", "home")], {"a": A}, 1200, seed=4,
                  strangers_per_min=20, door=True)
    p = tmp_path / "t.jsonl"
    tr.write(p)
    assert '"door": "front"' in p.read_text()
    with open(p, "a") as f:
        f.write(f'{{"t": 1200, "address": "{A}", "rssi": -80, "receiver": "door-node"}}\n')
    assert main([str(p), "--tag", f"a={A}", "--json"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["presence"] for o in out] == ["home", "away", "home"]
    assert 300 < out[1]["t"] < 300 + 35       # the door: seconds, not today's 300 s
    assert set(out[1]) == {"t", "partner", "presence"}


def test_bad_door_lines_are_refused_with_their_line_number(tmp_path, capsys):
    p = tmp_path / "t.jsonl"
    for bad in ('{"t": 2, "door": "front", "state": "ajar"}', '{"t": 2, "door": 5, "state": "open"}',
                '{"t": 2, "door": "front", "ok": "yes"}',
                f'{{"t": 2, "address": "{A}", "rssi": -60, "receiver": 3}}'):
        p.write_text(f'{{"t": 1, "address": "{A}", "rssi": -60}}\n{bad}\n')
        assert main([str(p), "--tag", f"a={A}"]) == 2
        err = capsys.readouterr().err
        assert "line 2" in err and err.count("\n") == 1, err
