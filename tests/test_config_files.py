"""Every service's configuration file is read the same way (core.config): a mistake is one line
per problem naming the field, exit code 2, never a traceback; the examples are valid."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def _command(kind: str, path: Path) -> list[str]:
    if kind == "panel":
        return ["panel", "--config", str(path), "--mock"]
    if kind == "caller":
        return ["caller", "--config", str(path)]
    return ["hub", "--plan", str(ROOT / "examples" / "household.toml"), "--broker-dir", "/nonexistent",
            "--sensors", str(path)]


def _mistakes(kind: str) -> tuple[str, list[str]]:
    """The example file with two mistakes: an unknown setting and a wrong type."""
    text = (ROOT / "examples" / f"{'sensors' if kind == 'hub' else kind}.toml").read_text()
    if kind == "panel":
        return (text.replace("port = 1883", 'port = "1883"').replace("bounce_ms = 30", "bounce_ms = 30\nbounce = 3"),
                ["port: must be a whole number", "bounce: is not a known setting"])
    if kind == "caller":
        return (text.replace("rounds = 2", 'rounds = "two"') + '\nringtone = "loud"\n',
                ["rounds: must be a whole number", "ringtone: is not a known setting"])
    return (text.replace("rate = 16000", "rate = 16000.0").replace("enabled = true", "enabled = true\nvolume = 3", 1),
            ["microphone.rate: must be a whole number", "microphone.volume: is not a known setting"])


@pytest.mark.parametrize("kind", ["panel", "caller", "hub"])
def test_each_mistake_is_one_line_naming_its_field(kind, tmp_path):
    text, says = _mistakes(kind)
    path = tmp_path / f"{kind}.toml"
    path.write_text(text)
    os.chmod(path, 0o600)
    r = cli(*_command(kind, path))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith(f"timeout-hub {kind}: ")]
    for said in says:
        assert sum(said in line for line in lines) == 1, (said, r.stderr)


@pytest.mark.parametrize("kind", ["panel", "caller", "hub"])
def test_a_folder_or_a_missing_file_is_one_sentence(kind, tmp_path):
    for path, says in ((tmp_path, "is a folder"), (tmp_path / "missing.toml", "does not exist")):
        r = cli(*_command(kind, path))
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_examples_are_valid():
    from core.config import load_config
    from firmware.caller.service import CallerConfig
    from firmware.hub.sensors import load_sensors
    from firmware.panel.service import PanelConfig
    load_config(ROOT / "examples" / "panel.toml", PanelConfig)
    load_config(ROOT / "examples" / "caller.toml", CallerConfig)
    load_sensors(ROOT / "examples" / "sensors.toml")
