"""The household plan and the caller's file, checked against each other (issue 15): each fact is
written in one of them only, so the two must agree on what they share — the household, how many
contacts each partner has (the plan counts them, the caller's file holds their numbers in calling
order) and who answers check-ins by SMS (the plan says so, the caller's file holds that number)."""
from __future__ import annotations

from pathlib import Path

from firmware.caller.config import CallerConfig
from firmware.hub.plan import HouseholdPlan


def mismatches(plan: HouseholdPlan, caller: CallerConfig) -> list[str]:
    """One sentence per disagreement; empty when the two files fit together."""
    found: list[str] = []
    if plan.household != caller.household:
        found.append(f"the plan is for household {plan.household}, the caller file for "
                     f"{caller.household}")
    for p in ("a", "b"):
        pp = plan.partners[p]   # type: ignore[index]
        listed = len(caller.contacts.get(p, []))   # type: ignore[call-overload]
        if pp.contacts != listed:
            found.append(f"the plan gives {p} {pp.contacts} contact{'s' if pp.contacts != 1 else ''}, "
                         f"the caller file {listed}")
        phone = caller.partners.get(p)   # type: ignore[call-overload]
        number = phone.number if phone else None
        if pp.sms_checkins and not number:
            found.append(f"the plan has partner {p} answer check-ins by SMS, but the caller file "
                         f"has no number for {p} (partners.{p}.number)")
        elif number and not pp.sms_checkins:
            found.append(f"the caller file has a phone number for partner {p}, who does not answer "
                         f"check-ins by SMS in the plan: remove it (numbers are kept only where "
                         "they are used)")
    return found


def names_other_plan(plan_path: Path, caller: CallerConfig) -> bool:
    """The caller file reads its partners' settings from another plan file than this one."""
    return Path(caller.plan).resolve() != Path(plan_path).resolve()
