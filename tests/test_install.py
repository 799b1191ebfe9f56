"""`make install` (docs/install.md): the units pass systemd-analyze with an exposure of at most
2.0 each, `make install DESTDIR=DIR` lays the files without touching this machine and can be run
again, and each service's system user reads its own configuration and credentials and nothing
else: the panel's user cannot read the caller's phone numbers. The permission tests run real
commands as throwaway system users (root only), removed again afterwards."""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mqtt.broker_config import Credentials, write_broker_config

ROOT = Path(__file__).resolve().parents[1]
UNITS = ("timeout-hub-hub", "timeout-hub-panel", "timeout-hub-caller")
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(not ANALYZE, reason="systemd-analyze is not installed (package systemd)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating throwaway system users needs root")


def make_install(destdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "install", f"DESTDIR={destdir}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@contextmanager
def open_dir() -> Iterator[Path]:
    """A folder other users can enter (pytest's tmp_path is root-only), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="th-install-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextmanager
def throwaway_users(ids: dict[str, tuple[int, int] | None]) -> Iterator[dict[str, str]]:
    """System users on this machine, one per key, with the given uid/gid (or any free one);
    yields key -> user name. They and their groups are removed again, whatever happens."""
    tag = secrets.token_hex(3)
    made: dict[str, str] = {}
    try:
        for key, uid_gid in ids.items():
            name = f"thtest-{tag}-{key}"[:32]
            if uid_gid is None:
                cmd = ["useradd", "--system", "--user-group", "--no-create-home", "-s", "/usr/sbin/nologin", name]
            else:
                subprocess.run(["groupadd", "-g", str(uid_gid[1]), name], check=True, capture_output=True)
                cmd = ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin",
                       "-u", str(uid_gid[0]), "-g", name, name]
            made[key] = name
            subprocess.run(cmd, check=True, capture_output=True)
        yield made
    finally:
        for name in made.values():
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)
        left = [n for n in made.values() if subprocess.run(["getent", "passwd", n],
                                                            capture_output=True).returncode == 0]
        assert not left, f"throwaway users left behind: {left}"


def can_read(user: str, path: Path) -> bool:
    r = subprocess.run(["runuser", "-u", user, "--", "cat", str(path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 or "Permission denied" in r.stderr, r.stderr
    return r.returncode == 0


def ids_in(destdir: Path, user: str) -> tuple[int, int]:
    for line in (destdir / "etc" / "passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise AssertionError(f"{user} was not created in {destdir}/etc/passwd")


def snapshot(d: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(d.rglob("*")):
        st = p.lstat()
        body = (os.readlink(p) if p.is_symlink() else
                hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "")
        out[str(p.relative_to(d))] = (st.st_mode, st.st_uid, st.st_gid, body)
    return out


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_has_an_exposure_of_at_most_2(unit):
    path = ROOT / "systemd" / f"{unit}.service"
    r = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", str(path)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout
    # the printed figure is rounded; --threshold compares the exact one (in tenths x 10)
    exact = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=20", str(path)],
                           capture_output=True, text=True, timeout=60)
    assert exact.returncode == 0, exact.stdout


@needs_analyze
def test_installed_units_pass_systemd_analyze_verify(tmp_path):
    with open_dir() as dest:
        r = make_install(dest)
        assert r.returncode == 0, r.stderr
        # the venv exists only on an installed Pi: point ExecStart at a real program, verify the rest
        checked = []
        for unit in UNITS:
            text = (dest / "usr/lib/systemd/system" / f"{unit}.service").read_text()
            assert text == (ROOT / "systemd" / f"{unit}.service").read_text()
            text = text.replace("ExecStart=/opt/timeout-hub/.venv/bin/timeout-hub ", "ExecStart=/bin/true ")
            (tmp_path / f"{unit}.service").write_text(text)
            checked.append(str(tmp_path / f"{unit}.service"))
    r = subprocess.run([ANALYZE, "verify", "--man=no", *checked], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_destdir_install_lays_the_files_touches_nothing_here_and_can_run_again():
    host_had = {u: subprocess.run(["getent", "passwd", u], capture_output=True).returncode == 0
                for u in ("timeout-hub", "timeout-panel", "timeout-caller")}
    host_unit = Path("/usr/lib/systemd/system/timeout-hub-hub.service")
    unit_before = host_unit.exists()
    with open_dir() as dest:
        r = make_install(dest)
        assert r.returncode == 0, r.stderr
        for f in ("usr/lib/systemd/system/timeout-hub-hub.service",
                  "usr/lib/systemd/system/timeout-hub-panel.service",
                  "usr/lib/systemd/system/timeout-hub-caller.service",
                  "usr/lib/systemd/system/mosquitto.service.d/timeout-hub.conf",
                  "usr/lib/sysusers.d/timeout-hub.conf",
                  "opt/timeout-hub/firmware/cli.py", "opt/timeout-hub/uv.lock",
                  "opt/timeout-hub/scripts/bootstrap.sh", "opt/timeout-hub/docs/install.md"):
            assert (dest / f).is_file(), f
        assert os.readlink(dest / "usr/bin/timeout-hub") == "/opt/timeout-hub/.venv/bin/timeout-hub"
        assert not (dest / "opt/timeout-hub/sim").exists(), "simulators are never installed on a Pi"
        assert not (dest / "etc/passwd").exists(), "no user database was made for a package build"
        manifest = (dest / "opt/timeout-hub/install-manifest.txt").read_text()
        assert "/etc/timeout-hub/caller.toml 0600 timeout-caller timeout-caller" in manifest
        assert "/etc/timeout-hub/broker/credentials 0711 root root" in manifest
        first = snapshot(dest)
        again = make_install(dest)
        assert again.returncode == 0, again.stderr
        assert snapshot(dest) == first
    for user, had in host_had.items():
        now = subprocess.run(["getent", "passwd", user], capture_output=True).returncode == 0
        assert now == had, f"make install DESTDIR=... changed this machine's user {user}"
    assert host_unit.exists() == unit_before


@needs_root
def test_each_service_user_reads_only_its_own_files_after_install():
    """Installed into a root file system (a copy of this machine's user database, so the new
    users get ids free here too): as the panel's uid the caller's numbers and password are
    unreadable; each service reads its own configuration and credentials."""
    with open_dir() as dest:
        (dest / "etc").mkdir()
        for f in ("passwd", "group"):
            shutil.copy(f"/etc/{f}", dest / "etc" / f)
        etc = dest / "etc/timeout-hub"
        # what provisioning writes, root's and private, before the installer sets the owners
        write_broker_config(etc / "broker", "hh-0042", broker_user="root", service_users={})
        for name in ("household.toml", "sensors.toml", "panel.toml", "caller.toml"):
            (etc / name).write_text((ROOT / "examples" / name).read_text())
            (etc / name).chmod(0o600)
        r = make_install(dest)
        assert r.returncode == 0, r.stderr
        ids = {s: ids_in(dest, f"timeout-{s}") for s in ("hub", "panel", "caller")}
        # the files belong to the users created in DESTDIR, not to anyone on this machine
        assert (etc / "caller.toml").stat().st_uid == ids["caller"][0]
        with throwaway_users(ids) as user:   # the same uids on this machine, to run as them
            cred = etc / "broker/credentials"
            assert not can_read(user["panel"], etc / "caller.toml")     # the phone numbers
            assert not can_read(user["panel"], cred / "caller.json")
            assert not can_read(user["panel"], cred / "hub.json")
            assert not can_read(user["panel"], etc / "household.toml")
            assert can_read(user["panel"], etc / "panel.toml")
            assert can_read(user["panel"], cred / "panel.json")
            assert not can_read(user["hub"], etc / "caller.toml")
            assert can_read(user["hub"], etc / "household.toml")
            assert can_read(user["hub"], etc / "sensors.toml")
            assert can_read(user["hub"], cred / "hub.json")
            assert can_read(user["caller"], etc / "caller.toml")
            assert can_read(user["caller"], cred / "caller.json")
            assert not can_read(user["caller"], etc / "household.toml")
            # nobody lists the credentials folder; the bridge's and wearables' stay root's
            ls = subprocess.run(["runuser", "-u", user["panel"], "--", "ls", str(cred)],
                                capture_output=True, text=True)
            assert ls.returncode != 0 and "Permission denied" in ls.stderr
            assert not can_read(user["hub"], cred / "bridge.json")


@needs_root
def test_broker_config_as_root_gives_each_service_its_own_credentials():
    """Before: every credentials file root-only in a root-only folder, and the services died with
    a PermissionError. Now each service's user loads its own and no other."""
    with open_dir() as d, throwaway_users({"hub": None, "panel": None, "caller": None}) as user:
        creds = write_broker_config(d / "broker", "hh-0042", broker_user="root", service_users=user)
        cred = d / "broker/credentials"
        for service in ("hub", "panel", "caller"):
            # (the project's Python lives in root's home here: the user reads the file with cat)
            r = subprocess.run(["runuser", "-u", user[service], "--", "cat", str(cred / f"{service}.json")],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout) == {"username": service, "password": creds[service].password}
            for other in ("hub", "panel", "caller", "bridge", "wearable-a"):
                if other != service:
                    assert not can_read(user[service], cred / f"{other}.json"), (service, other)
        # a re-run (new passwords) keeps the owners
        write_broker_config(d / "broker", "hh-0042", broker_user="root", service_users=user, rotate=True)
        assert can_read(user["panel"], cred / "panel.json")
        assert Credentials.load(cred / "panel.json") != creds["panel"]
