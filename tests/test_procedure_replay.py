"""procedure-replay: the real procedure on a scripted evening, on an accelerated manual clock."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from core.texts import TEXTS, say
from firmware.hub.plan import validate_plan
from firmware.hub.replay_cli import main, parse_script, replay

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "examples" / "household.toml"
EVENING = ROOT / "examples" / "evening.jsonl"
HOME = ['{"t": 0, "input": "presence", "partner": "a", "presence": "home"}',
        '{"t": 0, "input": "presence", "partner": "b", "presence": "home"}']


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", "procedure-replay", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def plan(**changes):
    data = tomllib.loads(PLAN.read_text())
    for section, values in changes.items():
        data[section].update(values)
    return validate_plan(data, today=dt.date(2026, 11, 21))


def run(lines: list[str], p=None, **kw) -> list[dict]:
    return replay(p or plan(), parse_script(lines), **kw)


def of(out: list[dict], kind: str, **match) -> list[dict]:
    return [o for o in out if o["kind"] == kind and all(o.get(k) == v for k, v in match.items())]


def test_the_example_evening_through_the_cli_ends_in_monitoring_in_each_partners_language():
    r = cli(EVENING, "--plan", PLAN, "--json")
    assert r.returncode == 0, r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert out[-1] == {"t": 1550, "kind": "end", "phase": "monitoring", "why": "settled"}
    types = [o["type"] for o in of(out, "event")]
    assert types.index("suggestion") < types.index("started") < types.index("left") \
        < types.index("may_meet_again") < types.index("ended")
    assert of(out, "event", type="ended")[0]["data"]["outcome"] == "evaluated"
    assert of(out, "event", type="left")[0]["partner"] == "a"
    # the timers fired at their moments: started at 150, check-ins at 10 and 20 minutes after
    assert [o["t"] for o in of(out, "event", type="checkin_requested")] == [750, 1350]
    assert not of(out, "call") and not of(out, "note")
    # every prompt in that partner's language (a: nl, b: en), with their own calming task
    for p, lang in (("a", "nl"), ("b", "en")):
        prompts = of(out, "prompt", partner=p)
        assert prompts and {o["lang"] for o in prompts} == {lang}
        for o in prompts:
            if o["key"] != "reminder.calming_task":
                assert o["text"] == TEXTS[o["key"]][lang]
    assert of(out, "prompt", partner="a", key="reminder.calming_task")[0]["text"] == \
        "Tijd voor iets dat je rustig maakt: wandelen"
    assert of(out, "prompt", partner="b", key="reminder.calming_task")[1]["text"] == \
        "Time for something that calms you: shower"
    assert of(out, "prompt", partner="a", key="notice.may_meet_again")[0]["text"].startswith("Jullie")
    # the evaluation: b stayed home and leads when the partners disagree (the plan's "stayer")
    outcome = of(out, "event", type="evaluation_outcome")[0]["data"]
    assert outcome["discuss"] == "next_session" and outcome["decided_by"] == "lead_b"


def test_two_runs_print_the_same_lines():
    first, second = cli(EVENING, "--plan", PLAN, "--json"), cli(EVENING, "--plan", PLAN, "--json")
    assert first.returncode == 0 and first.stdout == second.stdout
    ids = [json.loads(x)["id"] for x in first.stdout.splitlines() if '"id"' in x]
    assert len(ids) == len(set(ids)) > 20


def test_readable_lines_show_evening_time_who_and_what(capsys):
    assert main([str(EVENING), "--plan", str(PLAN)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert " 22:30  to a       checkin: " + say("checkin.how_do_you_feel", "nl") in out
    assert "  6:00  partner a  left" in out   # away at 4:00, a departure 2 minutes later
    assert out[-1] == " 25:50  end: back in monitoring, nothing left to do"


def test_early_return_warns_and_calls_for_the_returner_only():
    lines = [*HOME, '{"t": 10, "input": "partner_button", "partner": "a"}',
             '{"t": 60, "input": "presence", "partner": "a", "presence": "away"}',
             '{"t": 600, "input": "presence", "partner": "a", "presence": "home"}',
             '{"t": 700, "input": "call_outcome", "partner": "a", "outcome": "acknowledged", "final": true}',
             '{"t": 710, "input": "call_outcome", "partner": "b", "outcome": "acknowledged", "final": true}']
    out = run(lines, until=720)
    early = of(out, "event", type="returned_early")
    assert [(o["t"], o["partner"]) for o in early] == [(600, "a")]
    assert [(o["t"], o["partner"], o["reason"]) for o in of(out, "call")] == [(600, "a", "early_return")]
    notice = of(out, "prompt", key="notice.returned_early")
    assert [(o["partner"], o["lang"]) for o in notice] == [("a", "nl")]
    result = of(out, "event", type="call_result")[0]
    assert result["partner"] == "a" and result["data"] == {
        "outcome": "acknowledged", "request_id": of(out, "call", partner="a")[0]["id"]}
    assert [o["line"] for o in of(out, "note")] == [7]     # b has no call to answer
    assert out[-1] == {"t": 720, "kind": "end", "phase": "timeout", "why": "until"}
    quiet = run(lines, plan(calls={"on_early_return": False}), until=720)
    assert of(quiet, "event", type="returned_early") and not of(quiet, "call")


def test_timers_fire_between_sparse_inputs_and_the_replay_runs_on_after_the_last():
    # only two inputs: the suggestion expires 5 minutes later, at 420 s, with nothing sent then
    out = run([*HOME, '{"t": 120, "input": "sound", "thermometer": 9, "episode": true}'])
    assert [(o["t"], o["type"]) for o in of(out, "event")] == [(120, "suggestion"),
                                                               (420, "suggestion_expired")]
    assert out[-1]["t"] == 420 and out[-1]["why"] == "settled"
    # nobody answers anything: the default horizon (3 hours after the last input) sees it end
    out = run([*HOME, '{"t": 10, "input": "partner_button", "partner": "b"}'])
    assert of(out, "event", type="leave_overdue")[0]["t"] == 310
    assert of(out, "event", type="ended")[0]["data"]["outcome"] == "handed_to_contacts"
    assert out[-1]["phase"] == "monitoring"


def test_an_answer_with_no_open_question_is_a_note_not_an_error():
    out = run([*HOME, '{"t": 5, "input": "answer", "source": "b", "choice": 2}',
               '{"t": 6, "input": "answer", "source": "panel", "choice": 1}'])
    assert [(o["line"], o["t"]) for o in of(out, "note")] == [(3, 5), (4, 6)]
    assert "no question is open for partner b" in of(out, "note")[0]["note"]
    assert out[-1]["why"] == "settled"


BAD = [
    ("not json", "{\"t\": 3, \"input\": ", "not JSON"),
    ("not an object", "[3, \"sound\"]", "not a JSON object"),
    ("unknown input", '{"t": 3, "input": "door"}', "unknown input 'door'"),
    ("missing t", '{"input": "panel_press", "long": true}', 'missing field "t"'),
    ("missing field", '{"t": 3, "input": "presence", "partner": "a"}', 'missing field "presence"'),
    ("wrong type", '{"t": 3, "input": "sound", "thermometer": "8", "episode": true}',
     '"thermometer" must be a whole number 0-10'),
    ("t not a number", '{"t": "3", "input": "panel_press", "long": true}', '"t" must be a number'),
    ("t backwards", '{"t": 1, "input": "panel_press", "long": true}', "goes back before 2"),
    ("not a partner", '{"t": 3, "input": "partner_button", "partner": "c"}', '"partner" must be "a" or "b"'),
    ("bad answer source", '{"t": 3, "input": "answer", "source": "c", "choice": 1}', '"source" must be'),
    ("bad choice", '{"t": 3, "input": "answer", "source": "a", "choice": 4}', '"choice" must be 1, 2 or 3'),
    ("bad outcome", '{"t": 3, "input": "call_outcome", "partner": "a", "outcome": "ok", "final": true}',
     '"outcome" must be one of'),
    ("unknown field", '{"t": 3, "input": "panel_press", "long": true, "held": 2}', 'unknown field "held"'),
]


@pytest.mark.parametrize(("line", "why"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_every_kind_of_bad_line_exits_2_with_its_line_number(tmp_path, capsys, line, why):
    path = tmp_path / "evening.jsonl"
    path.write_text("\n".join([*HOME, "", '{"t": 2, "input": "panel_press", "long": false}', line]) + "\n")
    assert main([str(path), "--plan", str(PLAN)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{path}:5: ") and why in captured.err
    assert captured.err.count("\n") == 1


def test_a_bad_line_through_the_cli_is_one_line_never_a_traceback(tmp_path):
    path = tmp_path / "evening.jsonl"
    path.write_text(HOME[0] + "\n" + '{"t": 3, "input": "apart", "partner": "a", "apart": "yes"}\n')
    r = cli(path, "--plan", PLAN)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f'{path}:2: apart: "apart" must be true, false or null, not "yes"\n'


def test_a_missing_or_invalid_plan_is_refused_with_one_sentence_per_problem(tmp_path, capsys):
    assert main([str(EVENING), "--plan", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"timeout-hub procedure-replay: {tmp_path / 'none.toml'} does not exist."]
    bad = tmp_path / "bad.toml"
    bad.write_text(PLAN.read_text().replace("minimum_minutes = 20", "minimum_minutes = 10")
                   .replace('leaver = "announcer"', 'leaver = "c"'))
    assert main([str(EVENING), "--plan", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(x.startswith(f"timeout-hub procedure-replay: {bad}: timeout.") for x in err)
    assert any("at least 20 minutes" in x for x in err)
    assert main([str(tmp_path / "none.jsonl"), "--plan", str(PLAN)]) == 2
    assert capsys.readouterr().err == f"timeout-hub procedure-replay: {tmp_path / 'none.jsonl'} does not exist\n"


def test_a_plan_whose_evaluation_dates_are_past_still_replays(tmp_path, capsys):
    old = tmp_path / "old.toml"
    old.write_text(PLAN.read_text().replace("evaluation_dates = [2027-01-15, 2027-03-15]",
                                            "evaluation_dates = [2020-01-15, 2020-03-15]"))
    assert main([str(EVENING), "--plan", str(old), "--json", "--start", "2020-02-01T20:00+01:00"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert out[-1]["phase"] == "monitoring"
    # the evening's date decides which evaluation date is the next session
    assert of(out, "event", type="evaluation_outcome")[0]["data"]["session_date"] == "2020-03-15"


def test_the_panel_answers_what_it_shows_and_refuses_a_choice_it_has_no_button_for():
    # the panel is partner b's (b has neither a wearable nor SMS here); a answers on a's phone
    data = tomllib.loads(PLAN.read_text())
    data["partners"]["b"]["wearable"] = False
    b_on_panel = validate_plan(data, today=dt.date(2026, 11, 21))
    lines = [*HOME, '{"t": 10, "input": "partner_button", "partner": "a"}',
             '{"t": 60, "input": "presence", "partner": "a", "presence": "away"}',
             '{"t": 1220, "input": "answer", "source": "panel", "choice": 1}',
             '{"t": 1230, "input": "answer", "source": "a", "choice": 1}',
             '{"t": 1240, "input": "answer", "source": "panel", "choice": 3}',
             '{"t": 1250, "input": "answer", "source": "panel", "choice": 1}']
    out = run(lines, p=b_on_panel, until=1260)
    assert [(o["partner"], o["data"]["final"]) for o in of(out, "event", type="checkin_answered")] == \
        [("b", True), ("a", True)]
    assert of(out, "event", type="may_meet_again")
    # "did it last long enough?" has 2 options: the panel sends nothing for its third button
    assert [(o["line"], o["note"]) for o in of(out, "note")] == \
        [(7, "answer ignored: the open question has 2 options, not 3")]
    # the panel answers b's evaluation only; a answers their own on the phone
    assert [(o["partner"], o["data"]["choice"]) for o in of(out, "event", type="evaluation")] == [("b", 1)]


def test_with_both_partners_on_their_own_devices_the_panel_answers_for_nobody():
    lines = [*HOME, '{"t": 10, "input": "partner_button", "partner": "a"}',
             '{"t": 60, "input": "presence", "partner": "a", "presence": "away"}',
             '{"t": 1220, "input": "answer", "source": "panel", "choice": 1}']
    out = run(lines, until=1230)
    assert not of(out, "event", type="checkin_answered")
    # the mood buttons are dark (no question for the panel), so the replay's panel press is a note
    assert [o["note"] for o in of(out, "note")] == \
        ["answer ignored: no question is open for the panel (phase checkin)"]


def test_a_call_outcome_answers_that_partners_most_recent_open_request(monkeypatch):
    from firmware.hub import procedure as P
    given: list[str] = []
    handle = P.Procedure.handle

    def spy(self, inp):
        if isinstance(inp, P.CallOutcome):
            given.append(inp.request_id)
        return handle(self, inp)
    monkeypatch.setattr(P.Procedure, "handle", spy)
    outcome = '{"t": %d, "input": "call_outcome", "partner": "%s", "outcome": "acknowledged", "final": %s}'
    lines = [*HOME, '{"t": 10, "input": "partner_button", "partner": "a"}',
             '{"t": 60, "input": "presence", "partner": "a", "presence": "away"}',
             # nobody answers the end check-in: both partners' contacts at 25:10 and at 50:10
             outcome % (1600, "b", "true"), outcome % (1610, "a", "false"),
             outcome % (3100, "a", "true"), outcome % (3110, "a", "true"), outcome % (3120, "a", "true")]
    out = run(lines, until=3130)
    calls = {(o["partner"], o["t"]): o["id"] for o in of(out, "call")}
    assert given == [calls["b", 1510], calls["a", 1510], calls["a", 3010], calls["a", 1510]]
    assert [o["line"] for o in of(out, "note")] == [9]   # a's two requests both have their answer
    assert len(of(out, "event", type="call_result")) == 3


def test_back_in_monitoring_the_replay_still_waits_for_the_discuss_later_reminder():
    lines = EVENING.read_text().splitlines()
    assert '"t": 1550' in lines[-1]
    lines[-1] = lines[-1].replace('"choice": 3', '"choice": 2')   # both say "later"
    out = run(lines)
    assert of(out, "event", type="ended")[0]["t"] == 1550
    assert [(o["t"], o["partner"]) for o in of(out, "prompt", key="notice.discuss_topic_now")] == \
        [(1550 + 120 * 60, "a"), (1550 + 120 * 60, "b")]
    assert out[-1] == {"t": 1550 + 120 * 60, "kind": "end", "phase": "monitoring", "why": "settled"}
