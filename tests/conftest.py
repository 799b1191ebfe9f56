"""Fixtures: a real Mosquitto with the generated configuration on a free port, and bus clients
that are stopped after each test."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient
from tests.helpers.pulse import pulse_server  # noqa: F401 - a fixture for every test module

HOUSEHOLD = "test-home"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    b = PrivateBroker(tmp_path / "broker", HOUSEHOLD).start()
    yield b
    b.kill()


EXAMPLE_HOUSEHOLD = "hh-0042"   # the household of examples/household.toml


@pytest.fixture
def home(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A private broker for the example plan's household (tests that run the example plan)."""
    b = PrivateBroker(tmp_path / "broker", EXAMPLE_HOUSEHOLD).start()
    yield b
    b.kill()


@pytest.fixture
def bus(broker: PrivateBroker, tmp_path: Path) -> Iterator[Callable[..., BusClient]]:
    made: list[BusClient] = []

    def make(service: str, *, start: bool = True, state: str | None = None, **kw) -> BusClient:
        kw.setdefault("reconnect_max", 0.5)
        kw.setdefault("reconnect_min", 0.1)
        c = BusClient(service, HOUSEHOLD, broker.creds(service), port=broker.port,
                      state_dir=tmp_path / (state or service), **kw)
        made.append(c)
        if start:
            c.start()
            assert c.wait_connected(10), f"{service} did not connect: {broker.log_tail()}"
        return c

    yield make
    for c in made:
        try:
            c.stop(timeout=1)
        except Exception:
            pass


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()
