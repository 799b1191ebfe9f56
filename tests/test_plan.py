"""The household plan and `timeout-hub check-config`: a valid plan passes, and each mistake an
installer can make is named by its field path in a plain sentence."""
from __future__ import annotations

import copy
import datetime as dt
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from firmware.hub.plan import PlanError, load_plan, validate_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "household.toml"
TODAY = dt.date(2026, 11, 21)


def example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(PlanError) as e:
        validate_plan(data, today=TODAY)
    return e.value.problems


def check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", "check-config", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_example_plan_is_valid_and_says_what_it_agreed():
    plan = load_plan(EXAMPLE, today=TODAY)
    assert plan.timeout.minimum_minutes >= 20
    assert plan.partners["a"].contacts == 2 and plan.partners["b"].contacts == 1
    r = check_config(EXAMPLE)
    assert r.returncode == 0, r.stderr
    assert "is valid" in r.stdout and "at least 20 min" in r.stdout


def _set(data: dict, path: str, value) -> dict:
    d = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize("path, value, where, says", [
    ("timeout.minimum_minutes", 15, "timeout.minimum_minutes", "at least 20 minutes"),
    ("partners.a.contacts", 4, "partners.a.contacts", "must be at most 3"),
    ("partners.a.contacts", [{"ref": "a-1", "language": "nl"}, {"ref": "a-2"}], "partners.a.contacts",
     "write contacts = 2 and keep each contact's number and call language only in the caller's"),
    ("timeout.colour", "blue", "timeout.colour", "not a known setting"),
    ("timeout.leaver", "c", "timeout.leaver", "must be one of"),
    ("partners.b", KeyError, "partners", "partner b is missing"),
    ("children.protection", "", "children", "how they are protected"),
    ("partners.b.tags", ["C4:7C:8D:6A:12:01"], "(plan)", "given to both partners"),
    ("partners.a.tags", ["12:34"], "partners.a.tags", "is not a MAC address"),
    ("partners.a.calming_tasks", [], "partners.a.calming_tasks", "at least 1"),
    ("retention_days", 5000, "retention_days", "at most 730"),
    ("calls.on_not_calm", "yes", "calls.on_not_calm", "true or false"),
    ("partners.a.contacts", 0, "(plan)", "partner a has no contact person"),
    ("consent.a.audio", True, "consent.a.audio", "not a known setting"),
])
def test_each_mistake_is_named_by_path_in_a_sentence(path, value, where, says):
    found = problems(_set(example(), path, value))
    assert any(p == where and says in s for p, s in found), found


def test_every_problem_is_listed_at_once(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text()
                   .replace("minimum_minutes = 20", "minimum_minutes = 10")
                   .replace('leaver = "announcer"', 'leaver = "neighbour"')
                   .replace("retention_days = 90", "retention_days = 90\nowner = \"a\""))
    r = check_config(bad)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.startswith("  - ")]
    assert len(lines) == 3, r.stderr
    assert "timeout.minimum_minutes" in r.stderr and "timeout.leaver" in r.stderr
    assert "owner: is not a known setting" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content, says", [
    ("household = ", "not valid TOML"),
    (None, "does not exist"),
])
def test_unreadable_file_exit_2(tmp_path, content, says):
    f = tmp_path / "plan.toml"
    if content is not None:
        f.write_text(content)
    r = check_config(f)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


def test_a_plan_where_neither_partner_has_a_device_of_their_own_is_refused():
    """docs/procedure.md: the shared panel cannot tell whose answer a press is."""
    data = _set(_set(example(), "partners.a.sms_checkins", False), "partners.b.wearable", False)
    assert any(p == "(plan)" and "neither partner answers check-ins on a device" in s
               for p, s in problems(data))
    validate_plan(_set(example(), "partners.a.sms_checkins", False), today=TODAY)   # b has the wearable


def test_a_partner_with_a_wearable_and_no_tag_is_refused_in_one_sentence():
    """Issue 17: the wearable's GNSS is on only during a time-out, so with no tag the hub could
    not tell whether that partner is home before suggesting a break."""
    data = _set(example(), "partners.b.wearable", True)
    data = _set(data, "partners.b.tags", [])
    found = problems(data)
    assert any("partner b has a wearable but no tag" in sentence and "give them a tag too" in sentence
               for _, sentence in found), found
