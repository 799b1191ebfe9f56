"""The leave-one-source-out evaluation (sim/loso.py): a held-out source never reaches tuning, and on
a small fold the detector beats the level-only baseline."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from sim import loso


def _clip(name: str, kind: str, *sources: str) -> loso.Clip:
    return loso.Clip(name=name, kind=kind, sources=frozenset(sources), audio=np.zeros(1),
                     raised_from=31.0 if kind == "raised" else None)


def test_a_held_out_source_is_in_no_tuning_fold():
    held_speech, held_laugh = loso.HELD_OUT
    clips = [_clip("a", "raised", "speech:en-pocketsphinx", "effort:pitch-tilt"),
             _clip("b", "raised", held_speech, "effort:pitch-tilt"),
             _clip("c", "laughter", "speech:nl-fillets", held_laugh),
             _clip("d", "laughter", "speech:nl-fillets", "laugh:laugh-synth")]
    assert [c.name for c in loso.tuning_clips(clips)] == ["a", "d"]
    folds = {f.source: f for f in loso.folds(clips)}
    for f in folds.values():
        assert all(not (c.sources & set(loso.HELD_OUT)) for c in f.tune), f.source
        assert all(f.source not in c.sources for c in f.tune), f.source
    # a tuning fold scores only tuning clips; the held-out folds come last, marked, with their clips
    assert [c.name for c in folds["effort:pitch-tilt"].test] == ["a"]
    assert [f.held_out for f in loso.folds(clips)][-2:] == [True, True]
    assert [c.name for c in folds[held_speech].test] == ["b"]


@pytest.fixture(scope="module")
def small_fold(tmp_path_factory):
    return loso.build(seed=3, n_raised=1, sources=("nl-fillets",), kinds=("raised", "tv", "music"),
                      cache_dir=tmp_path_factory.mktemp("loso"))


def test_the_detector_beats_the_level_only_baseline_on_a_small_fold(small_fold):
    fold = loso.folds(small_fold)[-1]
    assert fold.source == "speech:nl-fillets" and len(fold.test) == 7
    right = {}
    for name, episodes in (("detector", loso.detector_episodes), ("level", loso.level_episodes)):
        s = loso.score_fold(fold, loso.run_episodes(fold.test, episodes))
        right[name] = s.near[0] + s.far[0] + sum(q for q, _ in s.negatives.values())
        if name == "detector":
            assert s.near[0] >= 1 and s.negatives["music"] == (1, 1), s
    assert right["detector"] > right["level"], right


def test_two_builds_of_the_same_clips_give_the_same_audio(tmp_path):
    """A LOSO build is deterministic: a fresh build, a build served from the cache, and one whose
    cache first held a build of fewer sources (the same source name drew other clips there) give
    the same audio, bit for bit."""
    from sim import evalset

    def digests(clips):
        return {c.name: hashlib.sha1(c.audio.tobytes()).hexdigest() for c in loso.tuning_clips(clips)}

    def build(sources, cache):
        evalset._MEM.clear()      # the in-process cache too: really rebuild or really reload
        return digests(loso.build(seed=3, n_raised=1, sources=sources, kinds=("door-slam", "laughter"),
                                  cache_dir=cache))

    two = ("en-pocketsphinx", "nl-fillets")
    build(two[1:], tmp_path)                     # the cache now holds a one-source build
    cached = build(two, tmp_path)
    fresh = build(two, None)
    again = build(two, tmp_path)                 # all from the cache
    assert len(fresh) == 6 and fresh == cached == again


def test_replaying_the_recorded_steps_gives_the_pipelines_own_episodes(small_fold):
    """The floor report replays rules on recorded steps (sim/episode_rule.py): its figures are the
    detector's only if a replay finds exactly what the pipeline found."""
    from dsp.detector import ShoutDetector
    from sim import episode_rule
    recs = loso.record_all(small_fold)
    found = 0
    for c in small_fold:
        assert recs[c.name].episodes == loso.detector_episodes(c), c.name
        assert episode_rule.replay(recs[c.name], lambda b: ShoutDetector(b)) == recs[c.name].episodes
        found += bool(recs[c.name].episodes)
    assert found >= 1
    # the evidence's own delay, the rule's wait taken out: never negative, and finite once found
    assert 0.0 <= loso.beyond_floor(small_fold, recs) < loso.TEST_S


def test_no_judge_of_the_steps_starts_an_episode_before_the_rules_floor(small_fold):
    """With every voiced step of raised speech saying yes, the 4-s rule still waits ~4 s from the
    first raised utterance (longer across pauses); a 2-s rule half that. The real detector, under
    the same rule, is never earlier than that floor."""
    from sim import episode_rule
    raised = [c for c in small_fold if c.positive]
    recs = loso.record_all(raised)
    assert len(raised) == 4
    for c in raised:
        r, rf = recs[c.name], c.raised_from
        four, two = episode_rule.floor_onset(r, rf, 4.0), episode_rule.floor_onset(r, rf, 2.0)
        assert 3.5 <= four <= 8.0 and 1.5 <= two <= 4.0 and two < four, (c.name, four, two)
        onsets = [a - rf for a, _ in r.episodes if a > rf]
        if onsets:
            assert onsets[0] >= four, (c.name, onsets[0], four)
