"""`timeout-hub broker-config`, and that the real broker accepts what it writes."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mqtt import contract, schemas
from mqtt.broker_config import Credentials, hash_password, write_broker_config
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient
from mqtt.errors import BrokerConfigError
from tests.conftest import wait_until
from tests.helpers.rawmqtt import Raw

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def _verify(password: str, hashed: str) -> bool:
    _, alg, it, salt, digest = hashed.split("$")
    assert alg == "7"
    return base64.b64encode(hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(it))).decode() == digest


def test_writes_everything_with_private_modes(tmp_path):
    me = pwd.getpwuid(os.geteuid()).pw_name
    r = cli("broker-config", "--household", "hh-0042", "--out", str(tmp_path), "--broker-user", me)
    assert r.returncode == 0, r.stderr
    conf = (tmp_path / "mosquitto.conf").read_text()
    for line in ("allow_anonymous false", "persistence true", "listener 1883 127.0.0.1",
                 f"password_file {tmp_path.resolve()}/passwd", f"acl_file {tmp_path.resolve()}/acl"):
        assert line in conf.splitlines(), line
    hashes = dict(l.split(":", 1) for l in (tmp_path / "passwd").read_text().splitlines())
    assert sorted(hashes) == sorted(contract.ROLES)   # the services and the installer's doctor
    for service in schemas.SERVICES:
        f = tmp_path / "credentials" / f"{service}.json"
        data = json.loads(f.read_text())
        assert set(data) == {"username", "password"} and data["username"] == service
        assert len(data["password"]) >= 24
        assert _verify(data["password"], hashes[service])
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    for private in ("passwd", "acl"):
        assert stat.S_IMODE((tmp_path / private).stat().st_mode) == 0o600
    assert "timeout/hh-0042/partner/a/input" in (tmp_path / "acl").read_text()


def test_rerun_keeps_passwords_and_rotate_changes_them(tmp_path):
    first = write_broker_config(tmp_path, "hh-1", broker_user="root" if os.geteuid() == 0 else None)
    again = write_broker_config(tmp_path, "hh-1", broker_user="root" if os.geteuid() == 0 else None)
    assert first == again
    rotated = write_broker_config(tmp_path, "hh-1", rotate=True,
                                  broker_user="root" if os.geteuid() == 0 else None)
    assert all(rotated[s].password != first[s].password for s in schemas.SERVICES)
    assert Credentials.load(tmp_path / "credentials" / "hub.json") == rotated["hub"]


def test_rotated_password_is_what_the_broker_accepts(tmp_path):
    b = PrivateBroker(tmp_path / "b", "hh-2").start()
    try:
        old = b.creds("panel").password
        b.stop()
        new = write_broker_config(tmp_path / "b", "hh-2", port=b.port, rotate=True,
                                  broker_user="root" if os.geteuid() == 0 else None)
        b.start()
        c = Raw(b.port, "panel", old, "old")
        assert str(c.wait_connack()) != "Success"
        c.close()
        c = Raw(b.port, "panel", new["panel"].password, "new")
        assert str(c.wait_connack()) == "Success"
        c.close()
    finally:
        b.kill()


@pytest.mark.parametrize("args, message", [
    (["--household", "Bad Name!"], "household id 'Bad Name!' is not valid"),
    (["--household", "x"], "is not valid"),
    (["--household", "hh-1", "--port", "70000"], "is not a TCP port"),
    (["--household", "hh-1", "--tls-cert", "/nonexistent"], "need --tls-port"),
    (["--household", "hh-1", "--tls-port", "8883", "--tls-bind", "127.0.0.1",
      "--tls-cert", "/nonexistent", "--tls-key", "/x"], "does not exist"),
    # the panel's TLS listener is opened on one chosen address, never on every interface by default
    (["--household", "hh-1", "--tls-port", "8883"], "--tls-port needs --tls-bind"),
    (["--household", "hh-1", "--broker-user", "no-such-user-here"], None),
])
def test_bad_input_gives_a_clear_message_and_exit_2(tmp_path, args, message):
    r = cli("broker-config", "--out", str(tmp_path), *args)
    if message is None:  # an unknown broker user only matters when run as root
        if os.geteuid() != 0:
            pytest.skip("the broker user is only used when run as root")
        message = "does not exist on this machine"
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_corrupt_credentials_file_is_reported(tmp_path):
    write_broker_config(tmp_path, "hh-3", broker_user="root" if os.geteuid() == 0 else None)
    (tmp_path / "credentials" / "caller.json").write_text("{not json")
    with pytest.raises(BrokerConfigError, match=r"caller\.json is not"):
        write_broker_config(tmp_path, "hh-3")


def test_hash_matches_mosquitto_passwd_format():
    h = hash_password("secret", salt=b"\x01" * 12)
    assert h.startswith("$7$101$") and _verify("secret", h)


def test_remote_panel_over_tls_with_the_generated_ca(tmp_path):
    from mqtt.broker_process import free_port
    b = PrivateBroker(tmp_path / "b", "hh-4", tls_port=free_port()).start()
    try:
        ca = tmp_path / "b" / "tls" / "ca.crt"
        assert ca.exists()
        assert stat.S_IMODE((tmp_path / "b" / "tls" / "server.key").stat().st_mode) == 0o600
        got = []
        hub = BusClient("hub", "hh-4", b.creds("hub"), port=b.port, state_dir=tmp_path / "hub")
        hub.on("panel/press", got.append)
        hub.start().wait_connected(5)
        panel = BusClient("panel", "hh-4", b.creds("panel"), port=b.tls_port, tls_ca=ca,
                          state_dir=tmp_path / "panel")
        panel.start()
        assert panel.wait_connected(10), b.log_tail()
        panel.publish("panel/press", schemas.PanelPress(press="long", held_s=2.1))
        assert wait_until(lambda: len(got) == 1, 5)
        # plain MQTT on the TLS port does not get in
        plain = Raw(b.tls_port, "panel", b.creds("panel").password, "plain")
        assert plain.wait_connack(1.0) is None
        plain.close()
        panel.stop()
        hub.stop()
    finally:
        b.kill()
