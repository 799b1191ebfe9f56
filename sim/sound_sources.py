"""Independent sources for the leave-one-source-out evaluation (sim/loso.py), all from Debian
packages (nothing fetched at run time).

Each source is one way the world can differ from what the detector was built on:
- speech (the household's talkers and the raised lines): `en-pocketsphinx` (pocketsphinx-testdata,
  English read speech), `nl-fillets` (fillets-ng-data-nl, Dutch acted lines), `espeak` (espeak-ng
  in English, Dutch, German and French), `flite` (flite's four English voices, another synthesiser);
- raised vocal effort, two transformations of normal speech: `pitch-tilt` (F0 +8-12 st, +6-10 dB
  above 1 kHz: sim/evalset.shouting, what the detector was designed with) and `f1-rate` (F0 only
  +4-7 st, a milder tilt, F1 region raised 12-25 %, syllables 10-25 % slower: raised rather than
  shouted effort, Traunmüller & Eriksson 2000; Garnier et al. 2010 for the slower rate);
- laughter: `laugh-synth` (sim/synth.laugh_burst), `laugh-rec-a` and `laugh-rec-b` (recorded laughs
  of hedgewars-data's voice actors, two disjoint groups of actors);
- other negatives: synthesised music, door slams, a vacuum cleaner (`synth`), and recorded alert
  sounds (sound-theme-freedesktop: a phone ringing, an alarm clock, `alerts-rec`).
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from sim import evalset as E

SPEECH_SOURCES = ("en-pocketsphinx", "nl-fillets", "espeak", "flite")
EFFORTS = ("pitch-tilt", "f1-rate")
LAUGHTER = ("laugh-synth", "laugh-rec-a", "laugh-rec-b")
_HEDGEWARS = E.SEARCH_ROOT / "games/hedgewars/Data/Sounds/voices"
# two disjoint groups of actors; Default's laugh is Classic's file, Robot's is not a human laugh
LAUGH_ACTORS = {"laugh-rec-a": ("British", "Classic", "Default_es", "Default_pl", "HillBilly", "Mobster"),
                "laugh-rec-b": ("Default_ru", "Default_uk", "Pirate", "Russian", "Russian_pl", "Singer",
                                "Surfer")}
_ALERTS = ("phone-incoming-call", "alarm-clock-elapsed", "phone-outgoing-calling", "bell")

ESPEAK = {"en": (("en-us+m3", 48, 165), ("en+f3", 55, 170)),
          "nl": (("nl+m1", 45, 160), ("nl+f2", 55, 165)),
          "de": (("de+m2", 45, 160), ("de+f4", 55, 165)),
          "fr": (("fr+m4", 45, 160), ("fr+f1", 55, 165))}
TEXTS = {
    "en": E.EN_CALM + E.EN_ARGUE,
    "nl": E.NL_CALM + E.NL_ARGUE,
    "de": ["Sollen wir heute Abend Nudeln essen?", "Der Bus war heute Morgen wieder zu spät.",
           "Kannst du mir bitte das Salz geben?", "Ich glaube, es regnet später noch.",
           "Du hörst mir nie zu!", "Warum hast du das schon wieder gemacht?",
           "Das habe ich überhaupt nicht gesagt!", "Wo warst du die ganze Nacht?"],
    "fr": ["On mange des pâtes ce soir?", "Le bus était encore en retard ce matin.",
           "Tu peux me passer le sel, s'il te plaît?", "Je crois qu'il va pleuvoir plus tard.",
           "Tu ne m'écoutes jamais!", "Pourquoi tu as encore fait ça?",
           "Ce n'est pas du tout ce que j'ai dit!", "Où étais-tu toute la nuit?"],
}
FLITE_PAIRS = (("rms", "slt"), ("awb", "kal16"))


@dataclass
class Talkers:
    """A household of two talkers from one speech source (utterances at FS, normal effort)."""
    source: str
    name: str
    voices: list[list[np.ndarray]]


def _key(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:16]


def _synth(cmd: list[str], fs: int, cache_dir: Path | None) -> np.ndarray:
    def make() -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "x.wav"
            subprocess.run([out.as_posix() if c == "{out}" else c for c in cmd], check=True,
                           capture_output=True)
            x, fs_in = sf.read(out.as_posix(), dtype="float64")
        return E._trim(E._to_fs(x, fs_in, fs), fs)
    return E._cached("loso:" + _key(*cmd, fs), cache_dir, make)


def _need(path: Path, package: str) -> None:
    if not path.exists():
        raise E.EvalSetError(f"{path} is missing: install the Debian package {package} "
                             f"(apt-get install {package})")


def households(source: str, fs: int, cache_dir: Path | None, rng: np.random.Generator) -> list[Talkers]:
    """The households (two talkers each) a speech source provides."""
    if source in ("en-pocketsphinx", "nl-fillets"):
        homes = E._households(fs, 0, cache_dir)     # the recorded corpora, as in sim/evalset.py
        h = homes["en" if source == "en-pocketsphinx" else "nl"]
        return [Talkers(source, source, h.calm)]
    if source == "espeak":
        if shutil.which("espeak-ng") is None:
            raise E.EvalSetError("espeak-ng not found on PATH: install the Debian package espeak-ng")
        return [Talkers(source, f"espeak-{lang}", [
            [_synth(["espeak-ng", "-v", v, "-p", str(p), "-s", str(s), "-a", "100", "-w", "{out}", t], fs,
                    cache_dir)
             for t in TEXTS[lang]] for v, p, s in voices]) for lang, voices in ESPEAK.items()]
    if source == "flite":
        if shutil.which("flite") is None:
            raise E.EvalSetError("flite not found on PATH: install the Debian package flite")
        return [Talkers(source, f"flite-{a}-{b}", [
            [_synth(["flite", "-voice", v, "-t", t, "-o", "{out}"], fs, cache_dir) for t in TEXTS["en"]]
            for v in (a, b)]) for a, b in FLITE_PAIRS]
    raise ValueError(f"unknown speech source {source}")


def raise_effort(kind: str, u: np.ndarray, fs: int, rng: np.random.Generator, p: dict) -> np.ndarray:
    """One utterance at raised effort by transformation `kind` with the talker's parameters `p`
    (`effort_params`)."""
    if kind == "pitch-tilt":
        return E.shouting(u, fs, rng, p["semi"], p["gain"], p["tilt"])
    # f1-rate: slower first (resampling lengthens and lowers everything by 1/stretch), then the
    # pitch and the F1 region are moved up past where they were
    q = Fraction(p["stretch"]).limit_denominator(24)
    slow = signal.resample_poly(u, q.numerator, q.denominator)
    return E.shouting(slow, fs, rng, p["semi"] + 12 * np.log2(p["stretch"]), p["gain"], p["tilt"],
                      formant_ratio=p["f1"] * p["stretch"])


def effort_params(kind: str, rng: np.random.Generator) -> dict:
    if kind == "pitch-tilt":
        return {"semi": rng.uniform(8, 12), "gain": rng.uniform(20, 30), "tilt": rng.uniform(6, 10)}
    return {"semi": rng.uniform(4, 7), "gain": rng.uniform(15, 22), "tilt": rng.uniform(3, 6),
            "f1": rng.uniform(1.12, 1.25), "stretch": rng.uniform(1.1, 1.25)}


def laughs(source: str, fs: int, cache_dir: Path | None, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """n laugh bursts from a laughter source."""
    if source == "laugh-synth":
        from sim import synth
        return [synth.laugh_burst(fs, rng)[:int(3.0 * fs)] for _ in range(n)]
    _need(_HEDGEWARS, "hedgewars-data")
    files = [_HEDGEWARS / a / "Laugh.ogg" for a in LAUGH_ACTORS[source]]
    for f in files:
        _need(f, "hedgewars-data")
    pool = [E._load_file(f, fs, cache_dir) for f in files]
    return [pool[int(i)] for i in rng.permutation(len(pool))[:n]] + \
        [pool[int(rng.integers(len(pool)))] for _ in range(max(0, n - len(pool)))]


def alert(fs: int, cache_dir: Path | None, rng: np.random.Generator) -> np.ndarray:
    """A recorded alert sound (ringing phone, alarm clock) from sound-theme-freedesktop."""
    root = E.SEARCH_ROOT / "sounds/freedesktop/stereo"
    f = root / f"{_ALERTS[int(rng.integers(len(_ALERTS)))]}.oga"
    _need(f, "sound-theme-freedesktop")
    return E._load_file(f, fs, cache_dir)
