"""Train the learnt shouting score (dsp/learnt.py) and choose its settings by leave-one-source-out.

    python -m sim.train_detector [--cache DIR] [--write]

1. Every clip of the LOSO tuning set (sim/loso.py: never a held-out source) and of the original
   set's development seeds 0-2 (sim/evalset.py) runs through the real pipeline once; each half-second
   step's features (`dsp.learnt.features`, relative to the baseline as the detector has it then) are
   kept with the step's label: raised speech (LOSO: from 1 s after raised speech begins; original
   set: the step's second lies mostly inside a shouted span) or not (every step of a negative clip,
   and a positive clip's steps before its shouting).
2. For every setting (hidden units, L2, threshold) and every tuning fold, a network is trained on the
   steps of the clips made without the fold's source (the development seeds' clips are tagged with
   their sources too, so a left-out source is nowhere in training) and scored on the fold's clips
   with the episode rule; the setting with the best worst fold wins.
3. That setting is trained on everything and, with --write, stored in dsp/shout_weights.json.

Scores here replay the recorded steps (the baseline as the current detector learnt it); the bench
runs the real pipeline with the stored weights.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize

from dsp import learnt
from dsp.detect_cli import run
from dsp.detector import CALM_WEIGHT, Baseline, Second, ShoutDetector, Sustained, Verdict, Weights, is_calm, score
from sim import evalset as E
from sim import loso

DEV_SEEDS = (0, 1, 2)
HIDDEN = (0, 8)
L2 = (1e-2, 1e-1)
POSITIVE_SHARE = (0.5, 0.35, 0.25, 0.15)   # of the training weight on raised steps: less, false alarms cost more
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.85)
_HOME_SOURCE = {"en": "speech:en-pocketsphinx", "nl": "speech:nl-fillets", "espeak-en": "speech:espeak",
                "espeak-nl": "speech:espeak"}


@dataclass
class Track:
    """One clip's judged steps."""

    name: str
    kind: str                   # "raised" or a negative kind
    sources: frozenset[str]
    far: bool
    original: bool              # from the original set (sim/evalset.py), not LOSO
    t: np.ndarray
    x: np.ndarray               # (steps, features)
    voiced: np.ndarray          # voiced enough to be judged at all
    label: np.ndarray           # 1 raised, 0 not, -1 left out of training (half in a shouted span)
    fuzzy: np.ndarray           # the current detector's score of the step
    raised_from: float | None = None      # LOSO: when raised speech begins
    sustained_at: float | None = None     # original set: when the sustained condition is met
    first_shout: float | None = None

    @property
    def positive(self) -> bool:
        return self.kind == "raised"


class _Recorder(ShoutDetector):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[float, np.ndarray, bool, float]] = []

    def step(self, t: float, s: Second) -> Verdict:
        b: Baseline = self.baseline
        self.rows.append((t, learnt.features(s, b)[:7] if s.voiced_enough else np.zeros(7),
                          s.voiced_enough, score(s, b, Weights())))
        return super().step(t, s)


def _record(audio: np.ndarray, fs: int, calibrate_s: int, offset_db: float):
    det = _Recorder()
    run(audio, fs, calibrate_seconds=calibrate_s, calibration_offset_db=offset_db, detector=det)
    t = np.array([r[0] for r in det.rows])
    x = np.array([r[1] for r in det.rows]).reshape(len(t), 7)   # the fuzzy score is added by _x
    return t, x, np.array([r[2] for r in det.rows], bool), np.array([r[3] for r in det.rows])


def _loso_track(c: loso.Clip) -> Track:
    t, x, v, fz = _record(c.audio, c.fs, loso.CALIBRATE_S, E.CAL_OFFSET_DB)
    label = np.zeros(len(t))
    if c.positive:
        label[t >= (c.raised_from or 0.0) + 1.0] = 1.0
        label[(t > (c.raised_from or 0.0)) & (t < (c.raised_from or 0.0) + 1.0)] = -1.0
    return Track(c.name, c.kind, c.sources, c.far, False, t, x, v, label, fz, raised_from=c.raised_from)


def _original_sources(c: E.Clip) -> frozenset[str]:
    """The LOSO sources an original development clip is made of (to keep a left-out source out)."""
    i = int(c.name.rsplit("-", 1)[1])
    names = E._HOMES_FOR.get(c.category, E._ALL_HOMES)
    home = names[i % len(names)]
    tags = {_HOME_SOURCE[home]}
    if c.category == "tv":
        tags.add(_HOME_SOURCE[E._ALL_HOMES[(E._ALL_HOMES.index(home) + 1) % len(E._ALL_HOMES)]])
    if c.positive:
        tags.add("effort:pitch-tilt")
    elif c.category == "laughter":
        tags.add("laugh:laugh-synth")
    elif c.category in ("music", "door-slam", "clapping", "vacuum"):
        tags.add("other:synth")
    return frozenset(tags)


def _original_track(c: E.Clip) -> Track:
    t, x, v, fz = _record(c.audio, c.fs, int(E.CALIBRATE_S), E.CAL_OFFSET_DB)
    label = np.zeros(len(t))
    if c.positive:
        for k, tk in enumerate(t):
            inside = sum(max(0.0, min(b, tk) - max(a, tk - 1.0)) for a, b in c.shout_spans)
            label[k] = 1.0 if inside >= 0.5 else (-1.0 if inside > 0 else 0.0)
    kind = "raised" if c.positive else c.category
    return Track(c.name, kind, _original_sources(c), c.distance_m >= 4.0, True, t, x, v, label, fz,
                 sustained_at=c.sustained_at, first_shout=min((a for a, _ in c.shout_spans), default=None))


def _x(k: Track) -> np.ndarray:
    """The step features as dsp.learnt.features gives them (the recording keeps the fuzzy score apart)."""
    return np.column_stack([k.x[:, :7], k.fuzzy])


def tracks(cache: Path | None) -> list[Track]:
    """Every training clip's steps (recorded once; kept in `cache` when given)."""
    f = cache / "train_detector_tracks.pkl" if cache else None
    if f is not None and f.exists():
        return pickle.loads(f.read_bytes())
    t0 = time.monotonic()
    clips = loso.tuning_clips(loso.build(cache_dir=cache))
    out = [_loso_track(c) for c in clips]
    for seed in DEV_SEEDS:
        out += [_original_track(c) for c in E.build(seed=seed, cache_dir=cache)]
    print(f"recorded {len(out)} clips in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if f is not None:
        f.write_bytes(pickle.dumps(out))
    return out


# ----------------------------------------------------------------------------- training

def _unpack(theta: np.ndarray, n: int, hidden: int):
    if hidden == 0:
        return np.zeros((0, n)), np.zeros(0), theta[:n], theta[n]
    w1 = theta[:hidden * n].reshape(hidden, n)
    b1 = theta[hidden * n:hidden * (n + 1)]
    w2 = theta[hidden * (n + 1):hidden * (n + 2)]
    return w1, b1, w2, theta[-1]


def train(tr: Sequence[Track], hidden: int, l2: float, share: float = 0.5, seed: int = 0) -> learnt.LearntScore:
    """Weighted cross-entropy, L2 on the weights: every clip weighs the same; raised steps carry
    `share` of the weight, not-raised steps the rest."""
    xs, ys, ws = [], [], []
    for k in tr:
        m = k.voiced & (k.label >= 0)
        if not m.any():
            continue
        xs.append(_x(k)[m])
        ys.append(k.label[m])
        ws.append(np.full(m.sum(), 1.0 / m.sum()))
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    for cls, part in ((0.0, 1.0 - share), (1.0, share)):
        w[y == cls] *= part / w[y == cls].sum()
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.clip((x - mean) / scale, -8.0, 8.0)
    n = x.shape[1]

    def loss(theta: np.ndarray):
        w1, b1, w2, b2 = _unpack(theta, n, hidden)
        if hidden:
            h = np.tanh(z @ w1.T + b1)
        else:
            h = z
        a = h @ w2 + b2
        p = 1.0 / (1.0 + np.exp(-a))
        nll = np.sum(w * (np.logaddexp(0.0, a) - y * a))
        reg = 0.5 * l2 * (np.sum(w1 ** 2) + np.sum(w2 ** 2))
        g_a = w * (p - y)
        g_w2 = h.T @ g_a + l2 * w2
        grads = []
        if hidden:
            g_h = np.outer(g_a, w2) * (1.0 - h ** 2)
            grads += [(g_h.T @ z + l2 * w1).ravel(), g_h.sum(axis=0)]
        grads += [g_w2, [g_a.sum()]]
        return nll + reg, np.concatenate(grads)

    size = (hidden * (n + 2) + 1) if hidden else n + 1
    theta0 = np.random.default_rng(seed).normal(0.0, 0.3, size)
    res = optimize.minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    w1, b1, w2, b2 = _unpack(res.x, n, hidden)
    return learnt.LearntScore(mean, scale, w1, b1, w2, float(b2))


# ----------------------------------------------------------------------------- scoring

def episodes(k: Track, p: np.ndarray, threshold: float) -> loso.Episodes:
    """The episode rule over a track's steps, as ShoutDetector applies it (calm talk included)."""
    rule, out = Sustained(0.5, calm_weight=CALM_WEIGHT), []
    calm = is_calm(k.voiced, p, k.x[:, learnt.FEATURES.index("level")])
    for t, yes, c in zip(k.t, (p >= threshold) & k.voiced, calm, strict=True):
        change = rule.step(bool(yes), bool(c))
        if change == "start":
            out.append([float(t), None])
        elif change == "end":
            out[-1][1] = float(t)
    return [(a, b) for a, b in out]


def _prob(model, k: Track) -> np.ndarray:
    return np.round(model.prob(_x(k)), 3) if model is not None else k.fuzzy


def loso_scores(tr: Sequence[Track], eps: dict[str, loso.Episodes]) -> list[loso.FoldScore]:
    clips = [loso.Clip(k.name, k.kind, k.sources, np.zeros(1), k.raised_from, k.far) for k in tr
             if not k.original]
    return [loso.score_fold(f, eps) for f in loso.folds(clips) if not f.held_out]


def original_summary(tr: Sequence[Track], eps: dict[str, loso.Episodes]):
    from sim.sound_eval import Result, summarise
    return summarise([Result(k.name, k.positive, k.kind if not k.positive else "shout", eps[k.name],
                             k.sustained_at, k.first_shout) for k in tr if k.original])


def objective(w: loso.Worst, ref: loso.Worst) -> tuple[bool, float, float]:
    """Higher is better. First: on the worst fold no kind of negative has fewer quiet clips than with
    the reference (the current detector): a false alarm costs the household's trust, and the
    original set's targets allow none. Then the worst fold's mean recall (near, far), then the
    lower onset p95."""
    keeps = all(w.quiet[k] >= ref.quiet[k] for k in w.quiet if ref.quiet[k] == ref.quiet[k])
    return keeps, 0.5 * (w.recall_near + w.recall_far), -w.onset_p95


_OUT_OF_FOLD: dict[tuple[int, float, float], dict[str, np.ndarray]] = {}


def per_voice(tr: Sequence[Track], probs: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    """Share of raised steps called shouting, near and far, for the higher and the lower voice of a
    two-voice household (F0 at least 3 st over the higher voice's normal: the higher voice raised;
    below: the lower one; the voices >= 5 st apart). Steps, not clips: a finer look than recall."""
    out: dict[str, list[float]] = {}
    for k in tr:
        if k.original or not k.positive or k.name not in probs:
            continue
        m = k.voiced & (k.label == 1) & (k.x[:, 0] - k.x[:, 1] >= 5.0)
        high = k.x[:, 1] >= 3.0
        for who, sel in (("higher", m & high), ("lower", m & ~high)):
            key = f"{'far' if k.far else 'near'} {who}"
            out.setdefault(key, []).extend((probs[k.name][sel] >= threshold).astype(float))
    return {key: float(np.mean(v)) if v else float("nan") for key, v in sorted(out.items())}


def cross_validate(tr: Sequence[Track], hidden: int, l2: float, share: float,
                   thresholds: Sequence[float]) -> dict[float, list[loso.FoldScore]]:
    """Each tuning fold scored by a network trained without its source, per threshold."""
    lo = [k for k in tr if not k.original]
    clips = [loso.Clip(k.name, k.kind, k.sources, np.zeros(1), k.raised_from, k.far) for k in lo]
    by_name = {k.name: k for k in tr}
    out: dict[float, list[loso.FoldScore]] = {thr: [] for thr in thresholds}
    for f in loso.folds(clips):
        if f.held_out:
            continue
        model = train([k for k in tr if f.source not in k.sources], hidden, l2, share)
        probs = {c.name: _prob(model, by_name[c.name]) for c in f.test}
        if f.source.startswith("speech:"):      # every clip has one: its out-of-fold probabilities
            _OUT_OF_FOLD[(hidden, l2, share)] = _OUT_OF_FOLD.get((hidden, l2, share), {}) | probs
        for thr in thresholds:
            eps = {c.name: episodes(by_name[c.name], probs[c.name], thr) for c in f.test}
            out[thr].append(loso.score_fold(f, eps))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.train_detector")
    ap.add_argument("--cache", type=Path, default=None, help="keep rendered clips and recorded steps here")
    ap.add_argument("--write", action="store_true", help=f"store the chosen network in {learnt.WEIGHTS_PATH.name}")
    a = ap.parse_args(argv)
    tr = tracks(a.cache)
    current = {k.name: episodes(k, k.fuzzy, 0.5) for k in tr}
    w_cur = loso.worst(loso_scores(tr, current))
    print(f"current detector (replayed): worst fold {w_cur}; objective {objective(w_cur, w_cur)}")
    results = []
    for hidden in HIDDEN:
        for l2 in L2:
            for share in POSITIVE_SHARE:
                for thr, scores in cross_validate(tr, hidden, l2, share, THRESHOLDS).items():
                    w = loso.worst(scores)
                    results.append((objective(w, w_cur), hidden, l2, share, thr, w, scores))
                    print(f"hidden {hidden} l2 {l2:g} positive share {share} threshold {thr}: objective "
                          f"{objective(w, w_cur)}, near {w.recall_near:.2f} far {w.recall_far:.2f} p95 "
                          f"{w.onset_p95:.1f} " + " ".join(f"{k[:5]} {v:.2f}" for k, v in w.quiet.items()),
                          flush=True)
    best = max(results, key=lambda r: r[0])
    _, hidden, l2, share, thr, w, scores = best
    print(f"chosen: hidden {hidden}, l2 {l2:g}, positive share {share}, threshold {thr}; "
          f"objective {objective(w, w_cur)} (current detector {objective(w_cur, w_cur)})")
    print("\n".join(loso.table(scores)))
    fuzzy = {k.name: k.fuzzy for k in tr}
    print("raised steps called shouting, out of fold (learnt) / current: "
          + ", ".join(f"{key} {v:.2f} / {per_voice(tr, fuzzy, 0.5)[key]:.2f}"
                      for key, v in per_voice(tr, _OUT_OF_FOLD[(hidden, l2, share)], thr).items()))
    model = train(tr, hidden, l2, share)
    eps = {k.name: episodes(k, _prob(model, k), thr) for k in tr}
    s = original_summary(tr, eps)
    s0 = original_summary(tr, current)
    print(f"original dev seeds (in training; replayed): learnt recall {s.recall:.2f} negatives {s.false_episodes} "
          f"p95 {np.percentile(s.latencies, 95) if s.latencies else float('nan'):.1f}; current recall "
          f"{s0.recall:.2f} negatives {s0.false_episodes} p95 "
          f"{np.percentile(s0.latencies, 95) if s0.latencies else float('nan'):.1f}")
    if a.write:   # the threshold moved into the bias: the detector's own 0.5 applies
        model = learnt.LearntScore(model.mean, model.scale, model.w1, model.b1, model.w2,
                                   model.b2 - float(np.log(thr / (1.0 - thr))))
        d = model.to_dict() | {"trained": {"threshold": thr, "hidden": hidden, "l2": l2, "positive_share": share,
                               "worst_fold_recall": objective(w, w_cur)[1],
                               "worst_fold_keeps_negatives": objective(w, w_cur)[0]}}
        learnt.WEIGHTS_PATH.write_text(json.dumps(d, indent=1) + "\n")
        print(f"wrote {learnt.WEIGHTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
