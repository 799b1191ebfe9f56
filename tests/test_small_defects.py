"""Small defects seen on the way (issue 12, item 5): a section per defect, each with the tests
that fail without its fix."""
from __future__ import annotations

import stat
import tomllib
from pathlib import Path

from firmware.caller import load_caller_config, write_caller_config

ROOT = Path(__file__).resolve().parents[1]


# -- 1. the caller's file is written by tomli-w ----------------------------------------------

def test_caller_file_round_trips_a_newline_and_leaves_out_none(tmp_path):
    path = write_caller_config(tmp_path / "caller.toml", {
        "household": "test-home", "code_word": "Zonnebloem", "credentials": tmp_path / "c.json",
        "power_gpio": None,
        "partners": {"a": {"number": "+31630000001", "sms_checkins": True,
                           "calming_tasks": ["een wandeling\nen dan \"thee\"", "muziek \\ rust"]},
                     "b": {"number": None, "language": "en"}},
        "contacts": {"a": [{"ref": "a-1\nnieuw", "number": "+31610000001"}]}})
    data = tomllib.loads(path.read_text())
    assert "power_gpio" not in data and "number" not in data["partners"]["b"]   # TOML has no null
    assert data["credentials"] == str(tmp_path / "c.json")
    assert data["partners"]["a"]["calming_tasks"] == ["een wandeling\nen dan \"thee\"", "muziek \\ rust"]
    assert data["contacts"]["a"][0]["ref"] == "a-1\nnieuw"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = load_caller_config(path)
    assert cfg.power_gpio is None and cfg.partners["b"].number is None
    assert cfg.partners["a"].calming_tasks[0] == "een wandeling\nen dan \"thee\""
