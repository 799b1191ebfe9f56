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
# every unit that `make install` lays (the wearable's is installed on its own Pi Zero)
UNITS = tuple(sorted(p.stem for p in (ROOT / "systemd").glob("*.service") if p.stem != "timeout-wearable"))
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(not ANALYZE, reason="systemd-analyze is not installed (package systemd)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating throwaway system users needs root")


def make_install(destdir: Path, target: str = "install") -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", target, f"DESTDIR={destdir}"], cwd=ROOT,
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
    groups: dict[int, str] = {}    # users that share a primary group share one throwaway group
    try:
        for key, uid_gid in ids.items():
            name = f"thtest-{tag}-{key}"[:32]
            if uid_gid is None:
                cmd = ["useradd", "--system", "--user-group", "--no-create-home", "-s", "/usr/sbin/nologin", name]
            else:
                if uid_gid[1] not in groups:
                    subprocess.run(["groupadd", "-g", str(uid_gid[1]), name], check=True, capture_output=True)
                    groups[uid_gid[1]] = name
                cmd = ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin",
                       "-u", str(uid_gid[0]), "-g", groups[uid_gid[1]], name]
            made[key] = name
            subprocess.run(cmd, check=True, capture_output=True)
        yield made
    finally:
        for name in made.values():
            subprocess.run(["userdel", name], capture_output=True)
        for name in {*made.values(), *groups.values()}:
            subprocess.run(["groupdel", name], capture_output=True)
        left = [n for n in made.values() if subprocess.run(["getent", "passwd", n],
                                                            capture_output=True).returncode == 0]
        assert not left, f"throwaway users left behind: {left}"


def can_read(user: str, path: Path) -> bool:
    r = subprocess.run(["runuser", "-u", user, "--", "cat", str(path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 or "Permission denied" in r.stderr, r.stderr
    return r.returncode == 0


def can_write(user: str, path: Path) -> bool:
    r = subprocess.run(["runuser", "-u", user, "--", "sh", "-c", f": >> '{path}'"], capture_output=True,
                       text=True, timeout=30)
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
            text = re.sub(r"ExecStart=/opt/timeout-hub/\.venv/bin/\S+ ", "ExecStart=/bin/true ", text)
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
                  "usr/lib/systemd/system/timeout-hub-share.service",
                  "usr/lib/systemd/system/timeout-org-service.service",
                  "usr/lib/systemd/system/timeout-org-web.service",
                  "opt/timeout-hub/report/html.py", "opt/timeout-hub/org/service.py",
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
        assert "/etc/timeout-hub/broker/credentials/bridge.json 0600 timeout-share timeout-share" in manifest
        assert not (dest / "etc/timeout-org").exists(), "a household's hub has no organisation folder"
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
        # what `broker-config --bridge` writes: the broker's folder, the organisation's public key
        (etc / "broker/bridge").mkdir(mode=0o700)
        (etc / "broker/bridge/org-age.pub").write_text("age1...\n")
        r = make_install(dest)
        assert r.returncode == 0, r.stderr
        ids = {s: ids_in(dest, f"timeout-{s}") for s in ("hub", "panel", "caller", "share")}
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
            # the share service: the bridge role's password and the organisation's public key
            assert can_read(user["share"], cred / "bridge.json")
            assert can_read(user["share"], etc / "broker/bridge/org-age.pub")
            assert not can_read(user["panel"], cred / "bridge.json")
            assert not can_read(user["share"], cred / "hub.json")
            assert not can_read(user["share"], etc / "caller.toml")


@needs_root
def test_only_the_org_service_reads_the_age_key_and_both_write_the_store():
    """`make install-org` into a root file system: the care worker's page cannot read the
    organisation's age key (whoever holds it reads every household's shared data); the service
    cannot read the workers' log-ins; both write the store (the page: its access log)."""
    from org.keys import create_key
    with open_dir() as dest:
        (dest / "etc").mkdir()
        for f in ("passwd", "group"):
            shutil.copy(f"/etc/{f}", dest / "etc" / f)
        org = dest / "etc/timeout-org"
        org.mkdir(mode=0o700)
        create_key(org / "age.key")                 # as root, as `python -m org.keys` writes it
        (org / "service.toml").write_text('host = "localhost"\n')
        (org / "service.toml").chmod(0o600)
        r = make_install(dest, "install-org")
        assert r.returncode == 0, r.stderr
        (org / "web/workers.json").write_text('{"workers": {}}')   # `org.web add-worker`, as root
        again = make_install(dest, "install-org")                  # puts its owner right
        assert again.returncode == 0, again.stderr
        ids = {s: ids_in(dest, u) for s, u in (("service", "timeout-org"), ("web", "timeout-org-web"),
                                               ("hub", "timeout-hub"))}
        assert ids["service"][1] == ids["web"][1], "the store's group is both users' group"
        db = dest / "var/lib/timeout-org/org.sqlite3"
        with throwaway_users(ids) as user:
            assert can_read(user["service"], org / "age.key")
            assert not can_read(user["web"], org / "age.key")
            assert not can_read(user["hub"], org / "age.key")
            assert can_read(user["service"], org / "service.toml")
            assert not can_read(user["web"], org / "service.toml")     # the broker password
            assert can_read(user["web"], org / "web/workers.json")
            assert not can_read(user["service"], org / "web/workers.json")
            assert can_write(user["service"], db) and can_write(user["web"], db)
            assert not can_read(user["hub"], db)


def test_the_share_unit_runs_share_status_with_the_plans_household(home, tmp_path):
    """The unit names no household (ExecStart as in systemd/timeout-hub-share.service): it
    comes from the plan; READY=1 and WATCHDOG=1 as systemd's Type=notify and WatchdogSec= ask."""
    import signal
    import socket
    import sys
    unit = (ROOT / "systemd/timeout-hub-share.service").read_text()
    argv = re.search(r"^ExecStart=/opt/timeout-hub/.venv/bin/timeout-hub (.*)$", unit, re.M).group(1).split()
    assert "--household" not in argv
    paths = {"/etc/timeout-hub/household.toml": str(ROOT / "examples/household.toml"),
             "/etc/timeout-hub/broker": str(home.directory),
             "/var/lib/timeout-hub/share": str(tmp_path / "share")}
    argv = [paths.get(a, a) for a in argv] + ["--port", str(home.port)]
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(sock_path))
        s.settimeout(15)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000",
               "PYTHONPATH": str(ROOT)}
        p = subprocess.Popen([sys.executable, "-m", "firmware.cli", *argv], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            got: set[str] = set()
            while not {"READY=1", "WATCHDOG=1"} <= got:
                got.add(s.recv(256).decode())
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(15) == 0, p.stderr.read()[-2000:]
    # another household than the plan's is one sentence, not a service for the wrong household
    r = subprocess.run([sys.executable, "-m", "firmware.cli", *argv, "--household", "other-home"],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "is not the plan's household (hh-0042" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


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
