"""The voice-aware household baseline (issue 4): a couple has two voices, and each partner's
shouting is measured against their own normal voice."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dsp import detector as D
from dsp.detect_cli import run
from dsp.detector import Baseline
from sim import evalset


def _hist(*peaks: tuple[float, float, float]) -> np.ndarray:
    """A histogram of F0 frames: (centre st, spread st, frames) per voice."""
    rng = np.random.default_rng(0)
    st = np.concatenate([rng.normal(c, s, int(n)) for c, s, n in peaks])
    h = D._f0_histogram(st)
    return h / h.sum()


def test_two_voices_are_found_and_one_voice_stays_one():
    low, high, floor = D._voice_modes(_hist((0.0, 1.5, 600), (13.0, 1.5, 300)))
    assert abs(low - 0.0) < 1.0 and abs(high - 13.0) < 1.0 and 10.0 < floor < high
    assert len(D._voice_modes(_hist((2.0, 2.0, 900)))) == 1
    # a few laughs or octave errors are not a second partner
    assert len(D._voice_modes(_hist((2.0, 2.0, 900), (22.0, 1.0, 60)))) == 1
    # nor is a "voice" above any speaking pitch (a song learnt by mistake)
    assert len(D._voice_modes(_hist((2.0, 2.0, 600), (26.0, 1.0, 400)))) == 1


def test_an_old_baseline_file_with_one_f0_still_loads_as_one_voice():
    old = {"speech_db": -50.0, "f0_st": 9.0, "hi_ratio_db": -12.0, "seconds": 60.0, "calibrated": True}
    b = Baseline.from_dict(json.loads(json.dumps(old)))
    assert b.voices == (9.0,) and b.f0_hist is None
    # and learns its voices from speech from then on; what it saves loads back the same
    b2 = Baseline.from_dict(json.loads(json.dumps(Baseline(f0_hist=list(_hist((0, 1, 500), (13, 1, 300))),
                                                           hist_seconds=60.0, calibrated=True).to_dict())))
    assert len(b2.voices) == 2
    with pytest.raises(ValueError):
        Baseline.from_dict({**old, "f0_hist": [0.1] * 7})
    with pytest.raises(ValueError):
        Baseline.from_dict({**old, "f0_hist": [float("nan")] * D.HIST_BINS})


@pytest.fixture(scope="module")
def household(tmp_path_factory):
    homes = evalset._households(evalset.FS_DEFAULT, 0, tmp_path_factory.mktemp("evalset"))
    return homes["espeak-en"]        # en-us+m3 (low) and en+f3 (high)


def _clip(home, *, shout: bool, seed: int) -> np.ndarray:
    """Evalset-style audio: a calibration in which the lower voice does most of the talking (as in
    many couples), then the higher voice alone: shouting at 2 m, or talking normally but as loud
    at the microphone (0.3 m)."""
    fs = evalset.FS_DEFAULT
    scene = evalset._Scene(fs, np.random.default_rng(seed), 40.0)
    rng = scene.rng
    scene.talk([home.calm[0]], 0.5, 6.8, 58.0, 1.5)
    scene.talk([home.calm[1]], 7.0, evalset.CALIBRATE_S - 0.2, 58.0, 1.5)
    if shout:
        effort = lambda u: evalset.shouting(u, fs, rng, 10.0, 25.0, 8.0)
        scene.talk([home.argue[1]], 12.0, 36.0, 87.0, 2.0, pause=(0.2, 0.8), effort=effort, speech_s=14.0)
    else:
        d = 0.3
        scene.talk([home.argue[1]], 12.0, 36.0, 87.0 + 20 * np.log10(d), d, pause=(0.2, 0.8), speech_s=14.0)
    scene.room_noise()
    return scene.audio()


def _episodes(audio: np.ndarray) -> tuple[list, Baseline]:
    _, p = run(audio, evalset.FS_DEFAULT, calibrate_seconds=int(evalset.CALIBRATE_S),
               calibration_offset_db=evalset.CAL_OFFSET_DB)
    return p.episodes, p.baseline


def test_the_higher_voice_shouting_is_an_episode_and_its_normal_loud_speech_is_not(household, monkeypatch):
    shouted, loud = _clip(household, shout=True, seed=1), _clip(household, shout=False, seed=2)
    eps, b = _episodes(shouted)
    assert len(b.voices) == 2 and b.voices[1] - b.voices[0] > 8, b.voices
    # the one-voice reference sits in the lower voice: the higher voice's shouts read far above it
    assert b.f0_st < b.voices[0] + 4, (b.f0_st, b.voices)
    assert eps and eps[0].start_s < 12.0 + 8.0, eps
    assert _episodes(loud)[0] == []
    # with the single reference (no second voice ever found), the same shouting is vetoed as
    # singing/laughter: 20+ semitones above the reference (the code before the voices also
    # called the loud normal speech an episode: ~+10 st above that reference)
    monkeypatch.setattr(D, "TWO_VOICES_MIN_SHARE", 1.01)
    eps1, b1 = _episodes(shouted)
    assert b1.voices == (b1.f0_st,) and eps1 == []
