"""A private PulseAudio server for tests: a null sink whose monitor is the default source, so
ALSA's `pulse` device (and therefore pyaudio) captures whatever `play()` sends into the sink.
tests/conftest.py makes the `pulse_server` fixture available to every test module:

    def test_x(pulse_server):
        cap = AudioCapture(device="pulse", ...).start()
        pulse_server.play(samples, 16000)           # or a WAV path
        pulse_server.kill(); pulse_server.restart() # an unplugged / returning microphone

The server runs as the current user (root works without --system: it only warns), without
default.pa, D-Bus or autospawn, on a socket in the test's tmp dir; the environment variables that
libpulse reads (also inside ALSA's pulse plugin) point at it for the duration of the test.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SINK = "hubtest"


class PulseServer:
    def __init__(self, root: Path, sink: str = SINK, rate: int = 48000, channels: int = 2):
        self.root = Path(root)
        self.sink, self.rate, self.channels = sink, rate, channels
        self.socket = self.root / "native"
        self.log_path = self.root / "pulseaudio.log"
        self.proc: subprocess.Popen | None = None
        self._plays = 0
        for d in ("run", "state", "home"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        client_conf = self.root / "client.conf"
        # A client must never start a server of its own when ours is killed on purpose.
        client_conf.write_text("autospawn = no\n")
        self.env = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.root / "run"),
            "PULSE_STATE_PATH": str(self.root / "state"),
            "PULSE_CLIENTCONFIG": str(client_conf),
            "PULSE_SOURCE": f"{sink}.monitor",
            "PULSE_SINK": sink,
        }

    def _server_env(self) -> dict[str, str]:
        env = dict(os.environ, **self.env)
        env["HOME"] = str(self.root / "home")  # its cookie lands here, not in root's home
        env["XDG_RUNTIME_DIR"] = str(self.root / "run")
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        return env

    def start(self, timeout: float = 10.0) -> PulseServer:
        if self.socket.exists():
            self.socket.unlink()  # a killed server leaves its socket behind
        cmd = ["pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--disallow-exit",
               "--use-pid-file=no", "--log-target=stderr", "--log-level=notice",
               "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
               "-L", f"module-null-sink sink_name={self.sink} rate={self.rate} "
                     f"channels={self.channels}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the server writes it after we return
        self.proc = subprocess.Popen(cmd, env=self._server_env(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited ({self.proc.returncode}): {self.log_tail()}")
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                self.pactl("set-default-source", f"{self.sink}.monitor")
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"pulseaudio did not come up within {timeout:.0f} s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as when a USB microphone and its server vanish at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)   # a stopped (hung) process dies of it too
            self.proc.wait(10)
        self.proc = None

    def hang(self) -> None:
        """SIGSTOP: a sound server that still holds its socket but answers nothing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def restart(self) -> PulseServer:
        self.kill()
        return self.start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=dict(os.environ, **self.env), check=check,
                              capture_output=True, text=True, timeout=10)

    def play(self, audio: str | Path | np.ndarray, fs: int | None = None, wait: bool = True):
        """Play a sound file, or float samples in [-1, 1] at `fs`, into the null sink. With
        wait=False the paplay process is returned while it plays."""
        if not isinstance(audio, (str, Path)):
            import soundfile
            if fs is None:
                raise ValueError("play(samples) needs the sample rate fs")
            self._plays += 1
            path = self.root / f"play-{self._plays}.wav"
            soundfile.write(path, np.asarray(audio, dtype=np.float32), int(fs), subtype="PCM_16")
            audio = path
        proc = subprocess.Popen(["paplay", f"--device={self.sink}", str(audio)],
                                env=dict(os.environ, **self.env), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        if not wait:
            return proc
        out, _ = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"paplay failed ({proc.returncode}): {out.decode(errors='replace')}")
        return proc

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture
def pulse_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PulseServer]:
    """A running private PulseAudio with a null sink; this process's libpulse points at it."""
    missing = [tool for tool in ("pulseaudio", "paplay", "pactl") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"PulseAudio is not installed ({', '.join(missing)} missing): "
                    f"apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
    server = PulseServer(tmp_path / "pulse")
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    server.start()
    try:
        yield server
    finally:
        server.kill()
