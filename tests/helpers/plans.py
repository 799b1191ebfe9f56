"""Household plans for tests: the example plan, changed only where a test says, as a file (the
caller reads its partners' languages, SMS check-ins and calming tasks from the plan file)."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

EXAMPLE_PLAN = Path(__file__).resolve().parents[2] / "examples" / "household.toml"


def plan_data(household: str = "hh-0042", **partners: dict[str, Any]) -> dict[str, Any]:
    """The example plan as a dict; `a={...}` / `b={...}` change those partners' settings."""
    data = tomllib.loads(EXAMPLE_PLAN.read_text())
    data["household"] = household
    for p, changes in partners.items():
        data["partners"][p].update(changes)
    return data


def write_plan(path: Path, household: str = "hh-0042", **partners: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(plan_data(household, **partners)))
    return path
