"""What the wearable says without words: vibration patterns (and the LED), the same in every
language; the partner learns them from the card in docs/wearable.md. Each pattern is
(on, off, on, off, ...) in seconds, distinct in count and length so they are told apart blind."""
from __future__ import annotations

Pattern = tuple[float, ...]

S, L, GAP = 0.15, 0.8, 0.25     # short buzz, long buzz, pause between buzzes
BETWEEN = 1.0                   # pause after a pattern, so two never run into one

PATTERNS: dict[str, Pattern] = {
    # your long press reached the hub's outbox: the time-out is announced
    "started": (1.5,),
    # how do you feel? answer 1, 2 or 3 presses (two short, one long: a question)
    "checkin": (S, GAP, S, GAP, L),
    # a question about the time-out afterwards (evaluation): answer with presses
    "evaluation": (L, GAP, L),
    # time for one of your calming tasks
    "reminder": (L,),
    # you are both calm: you may meet again
    "may_meet_again": (S, GAP, L, GAP, S, GAP, L),
    # any other notice from the hub (please leave, the time-out goes on, ...): look at the panel
    "notice": (L, GAP, S),
    # your answer was taken: one short buzz per press counted
    # ("confirm" is built per answer, see confirm())
    # the presses did not fit the question: answer again
    "retry": (0.08, 0.08) * 5 + (0.08,),
}


def confirm(choice: int) -> Pattern:
    """One short buzz per press counted: the partner feels what was sent."""
    out: list[float] = []
    for i in range(choice):
        out += [S, GAP] if i < choice - 1 else [S]
    return tuple(out)


def for_prompt(kind: str, key: str) -> str:
    """The pattern's name for a prompt from the hub."""
    if kind in ("checkin", "evaluation", "reminder"):
        return kind
    if key == "notice.may_meet_again":
        return "may_meet_again"
    return "notice"
