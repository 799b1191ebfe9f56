"""Issue 15 item 2, one source of truth: phone numbers only in the caller's file, the plan counts
each partner's contacts, calming tasks / languages / SMS check-ins are written once (in the plan),
and `check-config PLAN --caller CALLER` names each mismatch in one sentence."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from firmware.caller.config import CallerConfigError, load_caller_config, write_caller_config
from tests.helpers.plans import EXAMPLE_PLAN, write_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CALLER = ROOT / "examples" / "caller.toml"


def check_config(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", "check-config", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def caller_file(tmp_path: Path, **changes: object) -> Path:
    data = tomllib.loads(EXAMPLE_CALLER.read_text())
    data.update(changes)
    return write_caller_config(tmp_path / "caller.toml", data)


def test_the_example_plan_and_caller_file_fit_together(tmp_path):
    r = check_config(EXAMPLE_PLAN, "--caller", caller_file(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "fits the plan" in r.stdout
    assert "+316" not in (EXAMPLE_PLAN.read_text() + r.stdout)   # numbers only in the caller file


def test_each_mismatch_is_named_in_one_sentence(tmp_path):
    plan = write_plan(tmp_path / "plan.toml", a={"sms_checkins": False}, b={"contacts": 3})
    r = check_config(plan, "--caller", caller_file(tmp_path, household="hh-0043"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "the plan gives b 3 contacts, the caller file 1" in r.stderr
    assert "has a phone number for partner a, who does not answer check-ins by SMS" in r.stderr
    assert "the plan is for household hh-0042, the caller file for hh-0043" in r.stderr
    assert "3 mismatch(es)" in r.stderr


def test_an_sms_partner_without_a_number_is_a_mismatch(tmp_path):
    plan = write_plan(tmp_path / "plan.toml", b={"sms_checkins": True})
    r = check_config(plan, "--caller", caller_file(tmp_path))
    assert r.returncode == 2
    assert "partner b answer check-ins by SMS, but the caller file has no number for b" in r.stderr


def test_a_plan_written_the_old_way_is_told_what_to_change(tmp_path):
    old = EXAMPLE_PLAN.read_text().replace(
        "contacts = 2\n", 'contacts = [\n  { ref = "a-1", language = "nl" },\n'
                          '  { ref = "a-2", language = "nl" },\n]\n')
    (tmp_path / "old.toml").write_text(old)
    r = check_config(tmp_path / "old.toml")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert ("partners.a.contacts: contacts are counted here, not listed: write contacts = 2"
            in r.stderr), r.stderr


def test_a_caller_file_written_the_old_way_is_told_what_to_change(tmp_path):
    path = caller_file(tmp_path, partners={"a": {
        "number": "+31600000101", "sms_checkins": True, "calming_tasks": ["wandelen"]}},
        contacts={"a": [{"ref": "a-1", "number": "+31600000201"}]})
    with pytest.raises(CallerConfigError) as e:
        load_caller_config(path)
    said = dict(e.value.problems)
    assert "written once, in the household plan" in said["partners.a.sms_checkins"]
    assert "written once, in the household plan" in said["partners.a.calming_tasks"]
    assert "no longer used" in said["contacts.a[1].ref"]
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "caller", "--config", str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "calming_tasks" in r.stderr


def test_the_caller_takes_calming_tasks_and_languages_from_the_plan(tmp_path):
    """Written once: a task changed in the plan is the task the caller texts."""
    plan = write_plan(tmp_path / "plan.toml", a={"calming_tasks": ["fietsen", "thee zetten"]},
                      b={"language": "nl"})
    cfg = load_caller_config(caller_file(tmp_path, plan=str(plan)))
    assert cfg.partners["a"].calming_tasks == ["fietsen", "thee zetten"]
    assert cfg.partners["a"].sms_checkins and cfg.partners["a"].number == "+31600000101"
    assert cfg.partners["b"].language == "nl" and not cfg.partners["b"].sms_checkins


def test_the_caller_refuses_a_plan_of_another_household(tmp_path):
    plan = write_plan(tmp_path / "plan.toml", "hh-0099")
    with pytest.raises(CallerConfigError, match=r"the plan .* is for hh-0099"):
        load_caller_config(caller_file(tmp_path, plan=str(plan)))
