"""The learnt shouting score (dsp/learnt.py, issue 19), an evaluated option beside the default
fuzzy AND: its stored weights load with numpy only, it tells a shouted step from a normal one, and
damaged weights are refused with one sentence."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dsp import learnt
from dsp.detector import Baseline, Second, ShoutDetector


def _step(f0_up: float, tilt_up: float, level_up: float, b: Baseline) -> Second:
    return Second(frames=50, level_db=b.speech_db + level_up, voiced_frames=30, speech_db=b.speech_db + level_up,
                  f0_st=b.f0_st + f0_up, hi_ratio_db=b.hi_ratio_db + tilt_up, modulation_db=7.0,
                  articulation_db=6.0, f0_frames_st=np.full(30, b.f0_st + f0_up))


def test_the_stored_network_calls_raised_effort_shouting_and_normal_speech_not():
    model = learnt.load()
    b = Baseline(calibrated=True, seconds=30)
    det = ShoutDetector(Baseline(calibrated=True, seconds=30), scorer=model)
    normal = [det.step(0.5 * i, _step(0.0, 0.0, 0.0, b)).shout for i in range(1, 9)]
    shouted = [det.step(5 + 0.5 * i, _step(10.0, 7.0, 22.0, b)) for i in range(1, 13)]
    assert max(normal) < 0.5 and min(v.shout for v in shouted[2:]) >= 0.5, (normal, shouted)
    assert det.episodes, "sustained raised effort is an episode with the learnt score too"


def test_weights_that_do_not_fit_are_refused_with_one_sentence(tmp_path):
    d = json.loads(learnt.WEIGHTS_PATH.read_text())
    d["mean"] = d["mean"][:-1]
    bad = tmp_path / "w.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="do not fit"):
        learnt.load(bad)
    d["features"] = ["level"]
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="stored weights are for features"):
        learnt.load(bad)
