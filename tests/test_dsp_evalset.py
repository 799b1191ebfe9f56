"""The shouting detector's evaluation set (sim/evalset.py): is it built from the Debian packages,
deterministic, calibrated, and as hard as it claims (a level threshold cannot separate it)?
Levels, pitch and coverage are measured here with independent code, not evalset's helpers: the
A-weighting is dsp.weighting's analogue curve (checked against IEC 61672-1 Table 3 in
test_dsp_weighting), the pitch tracker is a plain autocorrelation unlike both evalset.voicing and
the detector's dsp.features."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from dsp.weighting import a_weighting_db
from sim import evalset as E

FS = E.FS_DEFAULT


# ----------------------------------------------------------------------------- measurement

def a_weighted_db(x: np.ndarray, fs: int) -> float:
    """LAeq in dB SPL, A-weighting (dsp.weighting's IEC 61672 curve) applied in the frequency domain."""
    spec = np.fft.rfft(np.asarray(x, float))
    gain = 10 ** (a_weighting_db(np.fft.rfftfreq(len(x), 1 / fs)[1:]) / 20)
    power = 2 * np.sum(np.abs(spec[1:] * gain) ** 2) / len(x) ** 2
    return 10 * np.log10(power + 1e-30) + E.CAL_OFFSET_DB


def one_second_levels(clip: E.Clip, start_s: float = E.CALIBRATE_S) -> np.ndarray:
    fs = clip.fs
    x = clip.audio[int(start_s * fs):]
    return np.array([a_weighted_db(x[i:i + fs], fs) for i in range(0, len(x) - fs + 1, fs // 2)])


def loud_level(clip: E.Clip) -> float:
    """What a level threshold sees after the calibration part: the 90th percentile of 1-s LAeq."""
    return float(np.percentile(one_second_levels(clip), 90))


def pitch_track(x: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """Autocorrelation F0 per 40 ms frame (10 ms hop); returns (f0 of voiced frames, voiced mask)."""
    n, hop = int(0.04 * fs), int(0.01 * fs)
    starts = range(0, len(x) - n, hop)
    energy = np.array([np.sum(x[i:i + n] ** 2) for i in starts])
    f0, mask = [], []
    lo, hi = int(fs / 600), int(fs / 60)
    for i, e in zip(starts, energy, strict=False):
        fr = x[i:i + n] - np.mean(x[i:i + n])
        ac = np.correlate(fr, fr, "full")[n - 1:]
        k = lo + int(np.argmax(ac[lo:hi]))
        ok = e > energy.max() * 1e-3 and ac[k] > 0.5 * ac[0]
        mask.append(ok)
        if ok:
            f0.append(fs / k)
    return np.array(f0), np.array(mask)


def frames_energy(x: np.ndarray, fs: int, mask: np.ndarray, above_hz: float | None = None) -> float:
    n, hop = int(0.04 * fs), int(0.01 * fs)
    total = 0.0
    for j, i in enumerate(range(0, len(x) - n, hop)):
        if mask[j]:
            spec = np.abs(np.fft.rfft(x[i:i + n] * np.hanning(n))) ** 2
            f = np.fft.rfftfreq(n, 1 / fs)
            total += spec[f > above_hz].sum() if above_hz else spec.sum()
    return total


def coverage(spans, t: np.ndarray, window: float = 10.0) -> np.ndarray:
    """Seconds of spans inside (t - window, t], computed on a 1 ms indicator."""
    step = 0.001
    end = max(t.max(), max(e for _, e in spans)) + step
    ind = np.zeros(int(end / step) + 2)
    for s, e in spans:
        ind[round(s / step):round(e / step)] = 1.0
    c = np.concatenate([[0.0], np.cumsum(ind)])
    hi = np.round(t / step).astype(int)
    lo = np.maximum(hi - int(window / step), 0)
    return (c[hi] - c[lo]) * step


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[E.Clip]:
    return E.build(cache_dir=tmp_path_factory.mktemp("evalset-cache"))


def by_category(clips, category):
    return [c for c in clips if c.category == category]


def librivox_utterance(seconds: float = 3.0) -> np.ndarray:
    files = sorted(E.sources()["pocketsphinx-en"])
    x, fs = sf.read(str(next(p for p in files if "librivox" in str(p))))
    assert fs == FS
    return x[:int(seconds * fs)]


# ----------------------------------------------------------------------------- sources

def test_sources_are_the_debian_packages():
    src = E.sources()
    assert any("librivox" in str(p) for p in src["pocketsphinx-en"])
    assert len(src["fillets-nl"]) > 100 and all(p.parent.name == "nl" for p in src["fillets-nl"])
    assert src["espeak-ng"][0].name == "espeak-ng"


def test_missing_package_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(E, "SEARCH_ROOT", tmp_path)
    with pytest.raises(E.EvalSetError, match="pocketsphinx-testdata") as err:
        E.sources()
    assert isinstance(err.value, FileNotFoundError)
    wav = tmp_path / "pocketsphinx/test/data/librivox/a.wav"
    wav.parent.mkdir(parents=True)
    sf.write(str(wav), np.zeros(FS), FS)
    with pytest.raises(FileNotFoundError, match="fillets-ng-data-nl"):
        E.build(n_per_category=1)


# ----------------------------------------------------------------------------- levels

def test_evalset_levels_follow_the_iec_curve_and_the_calibration():
    f = np.geomspace(10.0, 8000.0, 400)
    own = 20 * np.log10(E._a_weighting(f))
    assert np.max(np.abs(own - a_weighting_db(f))) < 0.01      # its own copy of the formula
    t = np.arange(2 * FS) / FS
    for freq, weight in ((1000.0, 0.0), (100.0, -19.142), (4000.0, 0.964)):  # Annex E
        x = 0.1 * np.sin(2 * np.pi * freq * t)
        expected = 20 * np.log10(0.1 / np.sqrt(2)) + E.CAL_OFFSET_DB + weight
        assert E.laeq(x, FS) == pytest.approx(expected, abs=0.02), freq
        assert a_weighted_db(x, FS) == pytest.approx(expected, abs=0.02), freq
    assert E.peak_spl(0.1 * np.sin(2 * np.pi * 1000 * t)) == pytest.approx(100.0, abs=0.01)


# ----------------------------------------------------------------------------- the shout transform

@pytest.mark.parametrize("semitones", [8.0, 12.0])
def test_shout_raises_f0_by_the_requested_semitones(semitones):
    x = librivox_utterance()
    y = E.shouting(x, FS, np.random.default_rng(0), semitones, 25.0, 8.0)
    f0_in, _ = pitch_track(x, FS)
    f0_out, _ = pitch_track(y.astype(float), FS)
    shift = 12 * np.log2(np.median(f0_out) / np.median(f0_in))
    assert abs(shift - semitones) < 1.0, shift
    assert len(y) == len(x)                                   # duration kept


def test_shout_raises_voiced_level_20_to_30_db_and_energy_above_1khz():
    x = librivox_utterance()
    for gain in (20.0, 30.0):
        y = E.shouting(x, FS, np.random.default_rng(1), 10.0, gain, 8.0).astype(float)
        _, voiced_in = pitch_track(x, FS)
        _, voiced_out = pitch_track(y, FS)
        both = voiced_in & voiced_out
        raised = 10 * np.log10(frames_energy(y, FS, both) / frames_energy(x, FS, both))
        assert gain - 3 < raised < gain + 3, raised
        share_in = frames_energy(x, FS, both, 1000) / frames_energy(x, FS, both)
        share_out = frames_energy(y, FS, both, 1000) / frames_energy(y, FS, both)
        assert share_out > 1.5 * share_in, (share_in, share_out)


# ----------------------------------------------------------------------------- the set

def test_categories_counts_and_shape(clips):
    assert len({c.name for c in clips}) == len(clips)
    assert sum(c.positive for c in clips) >= 12
    for cat in E.POSITIVE_CATEGORIES:
        assert all(c.positive for c in by_category(clips, cat)) and len(by_category(clips, cat)) >= 4
    for cat in E.NEGATIVE_CATEGORIES:
        assert not any(c.positive for c in by_category(clips, cat)) and len(by_category(clips, cat)) >= 4
    for c in clips:
        assert c.fs == FS and c.audio.dtype == np.float32 and c.audio.ndim == 1
        assert 30.0 <= len(c.audio) / c.fs <= 45.0
    distances = {c.distance_m for c in clips if c.positive}
    assert min(distances) == 1.0 and max(distances) >= 5.0


def test_nothing_clips_and_wav_round_trip(clips, tmp_path):
    assert max(float(np.max(np.abs(c.audio))) for c in clips) < 0.9
    c = clips[0]
    E.write_wav(c, tmp_path / "c.wav")
    back, fs = sf.read(str(tmp_path / "c.wav"))
    assert fs == c.fs and sf.info(str(tmp_path / "c.wav")).subtype == "PCM_16"
    assert np.max(np.abs(back - c.audio)) < 2 / 32768


def test_build_is_deterministic_and_independent_of_the_cache(clips, tmp_path, monkeypatch):
    # evalset also keeps decoded speech in a process-wide dict; empty it, or "cold" means nothing
    monkeypatch.setattr(E, "_MEM", {})
    again = E.build(n_per_category=1, cache_dir=tmp_path)          # a cold cache
    assert list(tmp_path.glob("evalset-*.npy"))
    monkeypatch.setattr(E, "_MEM", {})
    warm = E.build(n_per_category=1, cache_dir=tmp_path)           # everything read from disk
    first = {c.name: c for c in clips}
    for c, w in zip(again, warm, strict=False):
        assert np.array_equal(c.audio, first[c.name].audio), c.name
        assert c.shout_spans == first[c.name].shout_spans
        assert w.name == c.name and np.array_equal(w.audio, c.audio), c.name
    other = E.build(n_per_category=1, seed=1, cache_dir=tmp_path)
    assert not np.array_equal(other[0].audio[:len(again[0].audio)], again[0].audio[:len(other[0].audio)])


def test_calibration_part_is_normal_household_sound(clips):
    for c in clips:
        assert all(s >= E.CALIBRATE_S for s, _ in c.shout_spans), c.name
        cal = a_weighted_db(c.audio[:int(E.CALIBRATE_S * c.fs)], c.fs)
        assert 40.0 < cal < 65.0, (c.name, cal)
        quietest = one_second_levels(c, 0.0).min()
        assert 28.0 < quietest < 45.0, (c.name, quietest)           # room noise 30-40 dB(A)


def test_sustained_at_matches_the_spans(clips):
    for c in clips:
        if not c.positive:
            assert c.sustained_at is None, c.name
            if c.shout_spans:                                       # TV drama: brief raised lines
                t = np.arange(0, len(c.audio) / c.fs, 0.01)
                assert coverage(c.shout_spans, t).max() < 3.0, c.name
            continue
        total = sum(e - s for s, e in c.shout_spans)
        assert 6.0 - 0.3 <= total <= 15.0 + 0.3, (c.name, total)
        t = np.arange(0, len(c.audio) / c.fs, 0.001)
        first = t[np.argmax(coverage(c.shout_spans, t) >= 4.0 - 1e-6)]
        assert c.sustained_at == pytest.approx(first, abs=0.002), c.name
        assert c.sustained_at < len(c.audio) / c.fs - 2.0              # room for the 2 s onset target


def test_loud_normal_speech_is_as_loud_as_shouting_at_1m(clips):
    shout_1m = [loud_level(c) for c in clips if c.positive and c.distance_m == 1.0]
    loud = [loud_level(c) for c in by_category(clips, "loud-speech")]
    assert len(shout_1m) >= 3
    assert abs(np.median(loud) - np.median(shout_1m)) < 3.0, (loud, shout_1m)
    far = [loud_level(c) for c in clips if c.positive and c.distance_m >= 3.0]
    assert max(far) < min(loud), (far, loud)


def test_no_level_threshold_separates_the_set(clips):
    """The set is only fair to a detector if loudness alone cannot solve it."""
    pos = [loud_level(c) for c in clips if c.positive]
    neg = [loud_level(c) for c in clips if not c.positive]
    fires_on_quietest_shout = sum(level >= min(pos) for level in neg)
    assert fires_on_quietest_shout >= len(neg) // 3, (sorted(pos), sorted(neg))


def test_negatives_have_their_stated_levels(clips):
    for c in by_category(clips, "vacuum"):
        run = np.median(one_second_levels(c)[2:30])
        assert 73.0 < run < 82.0, (c.name, run)
    for c in by_category(clips, "door-slam") + by_category(clips, "clapping"):
        peak = 20 * np.log10(np.max(np.abs(c.audio))) + E.CAL_OFFSET_DB
        assert 94.0 < peak < 106.0, (c.name, peak)
    for c in by_category(clips, "music"):
        assert 74.0 < np.median(one_second_levels(c)[2:30]) < 88.0, c.name
    for c in by_category(clips, "tv"):
        assert 66.0 < np.median(one_second_levels(c)[2:30]) < 80.0, c.name
    for c in by_category(clips, "calm"):
        assert loud_level(c) < 66.0, c.name
