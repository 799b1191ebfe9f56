"""The care worker's page (issue 18) in headless Chromium: a worker signs in, sees only the
households assigned to them and opens a report; asking for another household's report is
refused (403, a calm sentence) and logged; every view is logged and handed to the hook that
mirrors it to the household."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from mqtt.shared import SharedCall, SharedTimeout, ThermometerPoint
from org.accounts import Accounts
from org.store import OrgStore
from org.web import CareWeb, make_server, start_in_thread
from tests.conftest import wait_until
from tests.helpers.browser import Chromium, visible_text

ROOT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
PASSWORD = "calm-and-long-enough"


def timeout(household: str, day: int, minutes: float) -> SharedTimeout:
    ts = dt.datetime(2026, 11, day, 20, 0, tzinfo=dt.UTC)
    return SharedTimeout(household=household, timeout_id=uuid.uuid4(), ts=ts, started=ts,
                         minutes=minutes, rounds=1, outcome="evaluated",
                         early_returns={"a": 0, "b": 1}, call_partners=["b"],
                         calls=[SharedCall(partner="b", outcome="acknowledged", acknowledged=True)],
                         evaluation={"long_enough": True},
                         thermometer=[ThermometerPoint(minute=-5, value=6),
                                      ThermometerPoint(minute=0, value=8)])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("org")
    accounts = tmp / "accounts.json"
    # the organisation's commands, as its administrator runs them
    done = subprocess.run([sys.executable, "-m", "org.web", "add-worker", "worker-1",
                           "--accounts", str(accounts)], input=PASSWORD + "\n", text=True,
                          capture_output=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "org.web", "assign", "worker-1", "hh-0042",
                           "--db", str(tmp / "org.sqlite3")], text=True, capture_output=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    Accounts(accounts).set_password("worker-2", PASSWORD + "-2")
    store = OrgStore(tmp / "org.sqlite3")
    store.assign("worker-2", "hh-0077")
    store.put(timeout("hh-0042", 10, 23.5))
    store.put(timeout("hh-0077", 12, 41.0))
    mirrored = []
    app = CareWeb(store, Accounts(accounts), now=lambda: NOW, on_access=mirrored.append,
                  tz=dt.UTC)
    server = make_server(app, "127.0.0.1", 0)
    start_in_thread(server)
    port = server.server_address[1]
    chromium = Chromium(tmp, height=1600)
    base = f"http://worker-1:{PASSWORD}@127.0.0.1:{port}"
    seen = {"list": chromium.dump_dom(f"{base}/?lang=en"),
            "report": chromium.dump_dom(
                f"{base}/household/hh-0042/report?since=2026-11-01&until=2026-11-30&lang=en"),
            "other": chromium.dump_dom(f"{base}/household/hh-0077/report?lang=en")}
    yield {"store": store, "port": port, "seen": seen, "mirrored": mirrored}
    server.shutdown()
    server.server_close()
    store.close()


def test_a_worker_sees_only_their_households_and_opens_a_report(site):
    listed = visible_text(site["seen"]["list"])
    assert "Signed in as worker-1" in listed and "hh-0042" in listed
    assert "hh-0077" not in listed
    report = site["seen"]["report"]
    text = visible_text(report)
    assert "Evaluation report" in text and "Household hh-0042" in text
    assert "2026-11-10 20:00" in text and "23.5 min" in text and "41 min" not in text
    assert report.count("<svg") == 2, "the weekly chart and the thermometer are drawn"
    log = site["store"].access_log("hh-0042")
    assert [(a.worker, a.action, a.allowed) for a in log] == [
        ("worker-1", "list", True), ("worker-1", "report 2026-11-01..2026-11-30", True)]
    assert all(a.ts == NOW for a in log)


def test_another_households_report_is_refused_calmly_and_logged(site):
    text = visible_text(site["seen"]["other"])
    assert text == ("This household is not assigned to you. This request has been logged. "
                    "Back to my households")
    assert "41 min" not in site["seen"]["other"]
    log = site["store"].access_log("hh-0077")
    assert [(a.worker, a.action, a.allowed) for a in log] == [("worker-1", "report", False)]
    # each entry, the refusal too, reached the hook that mirrors it to the household
    assert [(a.household, a.allowed) for a in site["mirrored"][:3]] == [
        ("hh-0042", True), ("hh-0042", True), ("hh-0077", False)]


def test_status_codes_and_a_wrong_password(site):
    def get(path: str, password: str = PASSWORD) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{site['port']}{path}")
        import base64
        token = base64.b64encode(f"worker-1:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    before = len(site["store"].access_log("hh-0077"))
    assert get("/household/hh-0077/report") == 403
    assert len(site["store"].access_log("hh-0077")) == before + 1
    assert get("/", password="a-wrong-password") == 401
    assert get("/household/hh-0042/report?since=yesterday") == 400
    assert get("/household/../etc/passwd") == 404


def test_no_plain_http_off_the_loopback(tmp_path):
    store = OrgStore(tmp_path / "org.sqlite3")
    with pytest.raises(ValueError, match="without --cert"):
        make_server(CareWeb(store, Accounts(tmp_path / "a.json")), "0.0.0.0", 0)
    store.close()


def test_served_over_tls_with_a_certificate(tmp_path, capfd, caplog):
    import base64
    import ssl

    from mqtt.broker_config import _generate_tls
    cert, key = _generate_tls(tmp_path, "org-web", ())
    store = OrgStore(tmp_path / "org.sqlite3")
    store.assign("worker-1", "hh-0042")
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.set_password("worker-1", PASSWORD)
    server = make_server(CareWeb(store, accounts, now=lambda: NOW), "127.0.0.1", 0,
                         cert=cert, key=key)
    start_in_thread(server)
    try:
        port = server.server_address[1]
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        req = urllib.request.Request(f"https://127.0.0.1:{port}/?lang=en")
        req.add_header("Authorization", "Basic " + base64.b64encode(
            f"worker-1:{PASSWORD}".encode()).decode())
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            assert r.status == 200 and "hh-0042" in r.read().decode()
        with pytest.raises((urllib.error.URLError, ConnectionError)):   # no plain HTTP there
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30)
        # the refused connection is one log line, not a traceback
        assert wait_until(lambda: any("connection from 127.0.0.1 failed" in r.getMessage()
                                      for r in caplog.records), 10)
        assert "Traceback" not in capfd.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
        store.close()
