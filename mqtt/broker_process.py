"""A private, real Mosquitto on a free localhost port with the generated configuration.
Used by the tests, `make bench` and `timeout-hub demo`; on a Pi the system's mosquitto.service
runs the same configuration (systemd/)."""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from mqtt.broker_config import Credentials, TlsListener, write_broker_config
from mqtt.errors import BrokerStartError


def free_port() -> int:
    """A free port below the ephemeral range: a port the kernel hands out as a client's source
    port (still in TIME_WAIT after a probe) would make the broker's bind fail."""
    low = 20000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = min(low, int(f.read().split()[0]) - 8000)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randint(max(low, 10000), max(low, 10000) + 7999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class PrivateBroker:
    def __init__(self, directory: Path, household: str = "test-home", *, port: int | None = None,
                 tls_port: int | None = None):
        self.directory = Path(directory)
        self.household = household
        self.port = port or free_port()
        self.tls_port = tls_port
        self._proc: subprocess.Popen | None = None
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise BrokerStartError("mosquitto is not installed: run `make test` or "
                                   "`apt-get install mosquitto`")
        self.exe = exe
        self._configure()
        self.log_path = self.directory / "mosquitto.log"

    def _configure(self) -> None:
        # As root, mosquitto would drop to its own user, which cannot enter a private temp dir.
        broker_user = "root" if os.geteuid() == 0 else None
        self.credentials = write_broker_config(
            self.directory, self.household, port=self.port, broker_user=broker_user,
            tls=TlsListener(self.tls_port, bind="127.0.0.1") if self.tls_port else None)

    def creds(self, service: str) -> Credentials:
        return self.credentials[service]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> PrivateBroker:
        for attempt in range(5):
            try:
                return self._start(timeout)
            except BrokerStartError as e:
                # a free port can be taken between choosing it and binding it: choose again
                if "Address already in use" not in str(e) or attempt == 4:
                    raise
                self.port = free_port()
                if self.tls_port:
                    self.tls_port = free_port()
                self._configure()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> PrivateBroker:
        if self.running:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 - the broker process writes it after we return
        self._proc = subprocess.Popen([self.exe, "-c", str(self.directory / "mosquitto.conf")],
                                      stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(f"mosquitto exited with {self._proc.returncode}: "
                                       f"{self.log_tail()}")
            if _port_open(self.port) and (not self.tls_port or _port_open(self.tls_port)):
                return self
            time.sleep(0.02)
        self.kill()
        raise BrokerStartError(f"mosquitto did not listen on port {self.port} within {timeout} s: "
                               f"{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), as `systemctl stop` does: the broker saves its queues."""
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._proc = None

    def kill(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def freeze(self) -> None:
        """SIGSTOP: the broker holds its sockets but answers nothing (a hung broker)."""
        if self._proc:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._proc:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
