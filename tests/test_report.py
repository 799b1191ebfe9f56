"""The evaluation report (issue 18): a month of two time-outs, made by the real procedure and
logged as the hub logs them, rendered and looked at in headless Chromium (a screenshot and the
page after rendering); and `timeout-hub report` end to end on a real hub event log."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w
from PIL import Image

from core.clock import ManualClock
from firmware.hub.eventlog import HubDatabase, LoggedEvent
from firmware.hub.plan import validate_plan
from firmware.hub.procedure import (
    DEPART_CONFIRM_S,
    Answer,
    CallOut,
    CallOutcome,
    EventOut,
    PanelPress,
    PresenceSeen,
    Procedure,
    Sound,
)
from firmware.report_cli import read_events
from mqtt.shared import ConsentSet, SharedTimeout, summarise
from report import render_html
from tests.helpers.browser import MEASURE, Chromium, visible_text
from tests.helpers.plans import EXAMPLE_PLAN

ROOT = Path(__file__).resolve().parents[1]
UTC = dt.UTC
MONTH = (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
FIRST = dt.datetime(2026, 11, 3, 19, 0, tzinfo=UTC)
SECOND = dt.datetime(2026, 11, 17, 20, 0, tzinfo=UTC)   # after partner b withdrew `call`
EVERYTHING = dict.fromkeys(("procedure", "checkin", "call", "sensing", "presence", "evaluation"), True)


def plan_dict(b_call: bool = True) -> dict:
    data = tomllib.loads(EXAMPLE_PLAN.read_text())
    data["consent"] = {"a": dict(EVERYTHING), "b": {**EVERYTHING, "call": b_call}}
    return data


class LoggedEvening:
    """The real procedure on a manual clock; every event saved as the hub saves it (its time
    is the wall clock of the step)."""

    def __init__(self, db: HubDatabase, start: dt.datetime):
        self.clock = ManualClock(start)
        self.proc = Procedure(validate_plan(plan_dict(), today=start.date()), self.clock)
        self.db = db
        self.calls: list[CallOut] = []

    def _save(self, outs: list) -> None:
        now = self.clock.wall()
        events = [LoggedEvent(o.id, now, o.type, o.category, o.partner, o.timeout_id, o.data)
                  for o in outs if isinstance(o, EventOut)]
        if events:
            self.db.save_step({}, events)
        self.calls += [o for o in outs if isinstance(o, CallOut)]

    def send(self, inp) -> None:
        self._save(self.proc.handle(inp))

    def wait(self, seconds: float, step: float = 5.0) -> None:
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            self._save(self.proc.tick())

    def timeout(self, at: dt.datetime, call_outcome: str, discuss: int) -> None:
        """Two suggestions (tension 5, then 8), a start, b leaves, comes back early (b's
        contacts are called: `call_outcome`), leaves again; both calm; evaluation."""
        self.clock.advance((at - self.clock.wall()).total_seconds())
        self.send(PresenceSeen("a", "home"))
        self.send(PresenceSeen("b", "home"))
        self.send(Sound(5, episode=True))
        self.wait(6 * 60)                                   # the first suggestion expires
        self.send(Sound(8, episode=True))
        self.wait(60)
        self.send(PanelPress(long=True))
        self.wait(30)
        self.send(PresenceSeen("b", "away"))
        self.wait(DEPART_CONFIRM_S + 10)
        self.wait(5 * 60)
        self.send(PresenceSeen("b", "home"))                 # back too early
        call = self.calls[-1]
        assert call.partner == "b" and call.reason == "early_return"
        self.send(CallOutcome(call.id, call_outcome, final=True))
        self.send(PresenceSeen("b", "away"))
        for _ in range(400):
            if self.proc.phase == "checkin" and self.proc.open_question("a"):
                break
            self.wait(5)
        q = self.proc.open_question("a")[0]
        self.send(Answer("a", q, 1))
        self.send(Answer("b", q, 1))
        self.send(PresenceSeen("b", "home"))
        for choice in (1, 1, discuss):   # long enough: yes; more time: no; discuss: ...
            for p in "ab":
                open_q = self.proc.open_question(p)
                assert open_q, f"partner {p} has no evaluation question open"
                self.send(Answer(p, open_q[0], choice))
        assert self.proc.phase == "monitoring"


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> Path:
    """A hub state folder with a month's event log: two time-outs."""
    state = tmp_path_factory.mktemp("hub")
    db = HubDatabase(state / "hub.sqlite3")
    evening = LoggedEvening(db, FIRST - dt.timedelta(hours=1))
    evening.timeout(FIRST, "acknowledged", discuss=3)      # the topic goes to the session
    evening.timeout(SECOND, "no_answer", discuss=1)
    db.close()
    return state


@pytest.fixture(scope="module")
def seen(month, tmp_path_factory):
    """The rendered report as Chromium shows it: a screenshot, the page after rendering, and
    where its plots landed. B withdrew `call` between the two time-outs: the first time-out was
    summarised (and sent) under the old consent, the second under the new."""
    events, unreadable = read_events(month, MONTH[0])
    assert unreadable == 0
    full = ConsentSet.from_flags({"a": EVERYTHING, "b": EVERYTHING})
    first = [e for e in events if e.ts < SECOND]
    later = [e for e in events if e.ts >= SECOND]
    items = summarise("hh-0042", first, full) + summarise("hh-0042", later,
                                                          full.without("b", ["call"]))
    out = tmp_path_factory.mktemp("page")
    page = out / "report.html"
    page.write_text(render_html("hh-0042", items, *MONTH, "en", tz=UTC))
    measured = out / "measured.html"    # the same page plus a script that only measures
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    chromium = Chromium(out)
    dom = chromium.dump_dom(measured.as_uri())
    png = chromium.screenshot(page.as_uri(), out / "report.png")
    return {"items": items, "page": page, "dom": dom, "png": png}


def test_the_month_reads_true_in_the_browser_with_the_withdrawn_calls_not_shared(seen):
    text = visible_text(seen["dom"])
    assert "Time-out 1" in text and "Time-out 2" in text and "Time-out 3" not in text
    assert "2026-11-03 19:07" in text and "2026-11-17 20:07" in text   # both starts
    # the first time-out: b's contacts were called and acknowledged (b's consent held)
    first = text[text.index("Time-out 1"):text.index("Time-out 2")]
    assert "partner B: 1, 1 acknowledged" in first and "partner A: no calls" in first
    # the second: b had withdrawn `call`, so b's calls are "not shared", never a number
    second = text[text.index("Time-out 2"):text.index("Topics for the next therapy session")]
    assert "Calls to contact persons partner A: no calls partner B: not shared" in second
    assert "no_answer" not in second and "no answer" not in second
    assert "partner B: 0" not in second and "partner B: no calls" not in second
    # topics: a count and a date, never content
    assert "kept for the session of 2027-01-15; kept so far: 1" in text
    # the household's name and nothing more personal
    assert "hh-0042" in text and "image/svg" not in text


def test_the_plots_are_really_drawn(seen):
    import re
    rects = json.loads(re.search(r'data-plots="([^"]*)"', seen["dom"]).group(1)
                       .replace("&quot;", '"'))
    assert len(rects) == 3, "the weekly chart and one thermometer per time-out"
    img = Image.open(seen["png"]).convert("L")
    for left, top, width, height in rects:
        assert width > 300 and height > 80, "each plot has a size on the page"
        box = img.crop((int(left), int(top), int(left + width), int(top + height)))
        dark = sum(box.histogram()[:200])
        assert dark > 0.02 * width * height, "ink in the plot's area: curve, bars, axes"
    # and below the last plot, past the page's end, the screenshot is blank: the count above
    # is the plot's, not the page's background
    blank = img.crop((0, img.height - 200, img.width, img.height))
    assert sum(blank.histogram()[:200]) == 0


def test_dutch_report_says_niet_gedeeld_and_no_names(seen):
    nl = render_html("hh-0042", seen["items"], *MONTH, "nl", tz=UTC)
    text = visible_text(nl)
    assert "Evaluatierapport" in text and "partner B: niet gedeeld" in text
    assert "not shared" not in text


def test_report_cli_end_to_end_on_the_hub_log(month, tmp_path):
    plan = tmp_path / "household.toml"
    plan.write_text(tomli_w.dumps(plan_dict(b_call=False)))
    before = sorted(p.name for p in month.iterdir())
    out = tmp_path / "report.html"
    # partner a withdrew `call` by SMS since the plan was written: the consent filter keeps it
    from firmware.share import access_log, consent_state
    from firmware.share.state import connect
    share = tmp_path / "share"
    share.mkdir()
    conn = connect(share)
    consent_state.change(conn, "a", ["call"], allowed=False, who="a")
    conn.close()
    done = subprocess.run(
        [sys.executable, "-m", "firmware.cli", "report", "--since", "2026-11-01",
         "--until", "2026-11-30", "--lang", "en", "--out", str(out), "--state-dir", str(month),
         "--plan", str(plan), "--share-state", str(share), "--pdf", str(tmp_path / "report.pdf")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TZ": "UTC"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 time-out(s)" in done.stdout
    assert sorted(p.name for p in month.iterdir()) == before, "the log is only read"
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    text = visible_text(out.read_text())
    assert "Time-out 2" in text and "partner B: not shared" in text
    assert "partner B: 1, 1 acknowledged" not in text   # the plan's consent: b shares no calls
    assert "partner A: not shared" in text               # a's withdrawal since the plan
    [entry] = access_log.entries(share)                  # R6: both partners can read this
    assert (entry.who, entry.action, entry.detail) == ("installer", "report", "2026-11-01:2026-11-30")
    pdf = (tmp_path / "report.pdf").read_bytes()           # printed by headless Chromium
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000


def test_report_cli_bad_input_is_one_sentence(month, tmp_path, capsys, monkeypatch):
    from firmware.cli import main
    broken, plan = tmp_path / "broken.toml", tmp_path / "household.toml"
    broken.write_text("household = [")
    plan.write_text(tomli_w.dumps(plan_dict()))
    cases = [(["--since", "1st of November", "--state-dir", str(month)], "is not a date"),
             (["--since", "2026-11-30", "--until", "2026-11-01"], "before --since"),
             (["--since", "2026-11-01", "--state-dir", str(tmp_path / "nope")], "does not exist"),
             (["--since", "2026-11-01", "--state-dir", str(month), "--plan", str(broken)],
              "broken.toml"),
             (["--since", "2026-11-01", "--state-dir", str(tmp_path)], "no event log")]
    for args, words in cases:
        code = main(["report", "--out", str(tmp_path / "r.html"), "--plan", str(plan),
                     "--share-state", str(tmp_path), *args])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "r.html").exists()
    # a hub without Chromium: the HTML is written, the PDF is one sentence and exit 1
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["report", "--since", "2026-11-01", "--until", "2026-11-30", "--state-dir",
                 str(month), "--plan", str(plan), "--share-state", str(tmp_path),
                 "--out", str(tmp_path / "r.html"),
                 "--pdf", str(tmp_path / "r.pdf")])
    err = capsys.readouterr().err
    assert code == 1 and "no Chromium is installed" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "r.html").is_file() and not (tmp_path / "r.pdf").exists()


def test_summaries_before_call_partners_do_not_claim_no_calls():
    old = SharedTimeout(household="hh-0042", timeout_id="00000000-0000-4000-8000-000000000001",
                        ts=FIRST, started=FIRST, calls=[])
    text = visible_text(render_html("hh-0042", [old], *MONTH, "en", tz=UTC))
    assert "no calls (only the calls of partners who consented)" in text


def test_a_call_whose_request_id_looks_like_a_number_is_still_in_the_report(tmp_path):
    """The ladder's request id is a uuid; 12345678-... has a digit run the bus's phone guard
    refuses. The report must not lose that call (it was a random one in eight before)."""
    db = HubDatabase(tmp_path / "hub.sqlite3")
    tid = "00000000-0000-4000-8000-00000000000a"
    db.save_step({}, [
        LoggedEvent("00000000-0000-4000-8000-000000000001", FIRST, "started", "procedure", "a",
                    tid, {"source": "panel"}),
        LoggedEvent("00000000-0000-4000-8000-000000000002", FIRST + dt.timedelta(minutes=8),
                    "call_result", "call", "b", tid,
                    {"outcome": "acknowledged", "request_id": "12345678-1234-4123-8123-123456789012"})])
    db.close()
    events, unreadable = read_events(tmp_path, FIRST.date())
    assert unreadable == 0 and [e.type for e in events] == ["started", "call_result"]
    items = summarise("hh-0042", events, ConsentSet.from_flags({"a": EVERYTHING, "b": EVERYTHING}))
    text = visible_text(render_html("hh-0042", items, *MONTH, "en", tz=UTC))
    assert "partner B: 1, 1 acknowledged" in text
