"""The set-up a fresh machine gets: the lock is what pyproject asks for, each service's extra
installs only what that service needs, and the layout's import rules hold."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = Path(os.environ.get("TIMEOUT_HUB_UV", ROOT / ".tools" / "bin" / "uv"))   # bootstrap installs it
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

def _uv(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    assert UV.exists(), f"{UV} is missing: scripts/bootstrap.sh installs it"
    return subprocess.run([str(UV), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", **(env or {})})


def _exported(*extras: str, dev: bool = False) -> set[str]:
    args = ["export", "--frozen", "--no-emit-project", "--no-hashes", "--offline"]
    for e in extras:
        args += ["--extra", e]
    if not dev:
        args.append("--no-dev")
    r = _uv(*args)
    assert r.returncode == 0, r.stderr
    return {line.split("==")[0].strip().lower() for line in r.stdout.splitlines()
            if line and not line.startswith(("#", " "))}


def test_the_lock_is_what_pyproject_asks_for():
    r = _uv("lock", "--check", "--offline")
    assert r.returncode == 0, r.stderr


def test_a_changed_pyproject_makes_the_lock_check_fail(tmp_path):
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    text = (tmp_path / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace('"paho-mqtt>=2.1,<3",',
                                                          '"paho-mqtt>=2.1,<3",\n    "six>=1.16",'))
    r = _uv("lock", "--check", "--offline", cwd=tmp_path)
    assert r.returncode != 0
    assert (tmp_path / "uv.lock").read_bytes() == (ROOT / "uv.lock").read_bytes()   # checked, not changed


def test_every_locked_package_has_hashes():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    for pkg in lock["package"]:
        if pkg.get("source", {}).get("editable") or pkg.get("source", {}).get("virtual"):
            continue
        files = pkg.get("wheels", []) + ([pkg["sdist"]] if "sdist" in pkg else [])
        assert files and all(f.get("hash", "").startswith("sha256:") for f in files), pkg["name"]


def test_a_panel_only_pi_installs_neither_scipy_nor_pyaudio_nor_bleak():
    panel = _exported("panel")
    assert {"gpiozero", "paho-mqtt", "pydantic"} <= panel
    assert not {"scipy", "pyaudio", "bleak", "numpy", "pyserial"} & panel
    # a panel that also listens for the tags (PANEL_BLE=1) gets bleak, still no audio or scipy
    listening = _exported("panel", "panel-ble")
    assert {"bleak", "cryptography"} <= listening and not {"scipy", "pyaudio"} & listening
    caller = _exported("caller")
    assert {"pyserial", "gpsd-py3", "tomli-w"} <= caller and not {"scipy", "pyaudio", "bleak"} & caller
    # the hub runs numpy only (docs/audio.md); scipy is for simulation and evaluation
    hub = _exported("hub")
    assert {"numpy", "pyaudio", "bleak"} <= hub and "scipy" not in hub
    assert {"scipy", "pytest"} <= _exported("hub", "panel", "caller", "sim", dev=True)


def test_the_panel_runs_from_its_own_extra_alone(tmp_path):
    """A real venv with only `[panel]` from the lock (uv's cache, offline): the panel's code imports
    and its command answers, and nothing of the hub's stack is there."""
    env = {"UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    r = _uv("sync", "--frozen", "--offline", "--extra", "panel", "--no-dev", "-q",
            "--python", sys.executable, env=env)
    if r.returncode != 0 and "offline" in r.stderr.lower():
        pytest.skip(f"the panel's wheels are not in uv's cache here: {r.stderr.strip()[:200]}")
    assert r.returncode == 0, r.stderr
    py = tmp_path / "venv" / "bin" / "python"
    code = ("import importlib.util as u, firmware.panel.service, firmware.cli; "
            "print([m for m in ('scipy', 'numpy', 'pyaudio', 'bleak') if u.find_spec(m)])")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    r = subprocess.run([str(tmp_path / "venv" / "bin" / "timeout-hub"), "panel", "--config",
                        str(tmp_path / "missing.toml")], capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_the_import_rules_hold():
    r = subprocess.run([str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_an_import_of_firmware_from_ble_breaks_the_rules(tmp_path):
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
    for pkg in packages:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "ble" / "rssi_filter.py", "a") as f:
        f.write("\nfrom firmware.hub import plan  # noqa\n")
    r = subprocess.run([str(LINT_IMPORTS)], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode != 0
    assert "ble.rssi_filter -> firmware.hub" in r.stdout and "BROKEN" in r.stdout


def test_the_readme_layout_names_every_package_and_only_those():
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    named = set()
    parent = ""
    for line in block.splitlines():
        words = line.split()
        if not words or not words[0].endswith("/"):
            continue
        if line.startswith("  "):
            named.add(parent + words[0].rstrip("/"))
        else:
            parent = words[0]
            named.update(w.rstrip("/") for w in words if w.endswith("/"))
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    packages |= {f"firmware/{p.name}" for p in (ROOT / "firmware").iterdir() if (p / "__init__.py").exists()}
    assert packages <= named, f"packages missing from the README layout: {packages - named}"
    assert all((ROOT / n).is_dir() for n in named), [n for n in named if not (ROOT / n).is_dir()]
