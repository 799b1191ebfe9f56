"""The evaluation report as one self-contained HTML page: inline CSS, inline SVG plots, no
script, no network; the browser's print gives a clean PDF (docs/care.md).

Every sentence is true for what was shared: a field that is None in a summary was not consented
and shows "not shared", never 0 or "none"; a count over several time-outs says for how many it
was not shared.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

from mqtt.shared import SharedCall, SharedTimeout, SharedTopics
from report.plots import thermometer_svg, weeks_svg
from report.texts import tr

Lang = Literal["nl", "en"]
PARTNERS = ("a", "b")

_CSS = """
:root { color: #1f2d33; background: #ffffff; font-family: "DejaVu Sans", Arial, sans-serif; }
body { max-width: 52rem; margin: 1.5rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d9e2e7; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 0 0 .5rem; }
.meta { color: #4a5a61; margin: .1rem 0; }
.intro { background: #f2f6f8; padding: .6rem .8rem; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e4eaed; vertical-align: top; }
th { font-weight: 600; color: #33444b; }
.timeout { border: 1px solid #d9e2e7; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
dl { display: grid; grid-template-columns: 14rem 1fr; gap: .2rem .8rem; margin: 0 0 .5rem; }
dt { color: #4a5a61; }
dd { margin: 0; }
.not-shared { color: #6b6b6b; font-style: italic; }
.nav { margin: 0 0 1rem; }
svg.plot { display: block; width: 100%; height: auto; max-width: 40rem; }
@media print {
  @page { size: A4; margin: 14mm; }
  :root { font-size: 10.5pt; }
  body { max-width: none; margin: 0; padding: 0; }
  .intro { background: none; border: 1px solid #cccccc; }
  .timeout, table, figure, svg.plot { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; }
  .nav { display: none; }
}
"""


@dataclass
class _Week:
    timeouts: list[SharedTimeout] = field(default_factory=list)


def _local(ts: dt.datetime, tz: dt.tzinfo | None) -> dt.datetime:
    return ts.astimezone(tz) if tz is not None else ts.astimezone()


def _ns(lang: Lang) -> str:
    return f'<span class="not-shared">{escape(tr("not_shared", lang))}</span>'


def _partner(p: str, lang: Lang) -> str:
    return tr(f"partner_{p}", lang)


def _sum_cell(values: list[int | None], lang: Lang) -> str:
    """A week's total over its time-outs, saying for how many it was not shared."""
    known = [v for v in values if v is not None]
    if not known:
        return _ns(lang)
    total = str(sum(known))
    missing = len(values) - len(known)
    if missing:
        return escape(tr("partly", lang, value=total, missing=missing, total=len(values)))
    return total


def _calls_of(t: SharedTimeout, p: str) -> list[SharedCall] | None:
    """The partner's calls, or None when they were not shared for that partner."""
    if t.calls is None:
        return None
    if t.call_partners is not None and p not in t.call_partners:
        return None
    return [c for c in t.calls if c.partner == p]


def _calls_text(calls: list[SharedCall], lang: Lang) -> str:
    if not calls:
        return escape(tr("calls_none", lang))
    ack = sum(c.acknowledged for c in calls)
    out = escape(tr("calls_some", lang, total=len(calls), acknowledged=ack))
    missed = [c.outcome.replace("_", " ") for c in calls if not c.acknowledged]
    if missed:
        out += "; " + escape(tr("calls_not_ack", lang, outcomes=", ".join(missed)))
    return out


def _week_rows(timeouts: list[SharedTimeout], lang: Lang, tz: dt.tzinfo | None,
               ) -> tuple[str, list[str], list[int]]:
    weeks: dict[tuple[int, int] | None, _Week] = {}
    for t in timeouts:
        key = None
        if t.started is not None:
            iso = _local(t.started, tz).isocalendar()
            key = (iso.year, iso.week)
        weeks.setdefault(key, _Week()).timeouts.append(t)
    rows, labels, counts = [], [], []
    for key in sorted(weeks, key=lambda k: (k is None, k or (0, 0))):
        ts = weeks[key].timeouts
        if key is None:
            label = tr("date_not_shared", lang)
        else:
            monday = dt.date.fromisocalendar(key[0], key[1], 1)
            label = tr("week_of", lang, week=key[1], monday=monday.isoformat())
            labels.append(f"{key[1]}")
            counts.append(len(ts))
        early = [_sum_cell([None if t.early_returns is None or p not in t.early_returns
                            else t.early_returns[p] for t in ts], lang) for p in PARTNERS]
        calls = []
        for p in PARTNERS:
            per = [_calls_of(t, p) for t in ts]
            total = _sum_cell([None if cs is None else len(cs) for cs in per], lang)
            ack = sum(c.acknowledged for cs in per if cs for c in cs)
            calls.append(total if all(cs is None for cs in per)
                         else f"{total} ({escape(tr('col_ack', lang, n=ack))})")
        rows.append(f"<tr><td>{escape(label)}</td><td>{len(ts)}</td>"
                    f"<td>{_sum_cell([t.rounds for t in ts], lang)}</td>"
                    f"<td>{_partner('a', lang)}: {early[0]}<br>{_partner('b', lang)}: {early[1]}</td>"
                    f"<td>{_partner('a', lang)}: {calls[0]}<br>{_partner('b', lang)}: {calls[1]}</td></tr>")
    return "\n".join(rows), labels, counts


def _all_weeks(since: dt.date, until: dt.date, counted: dict[str, int],
               ) -> tuple[list[str], list[int]]:
    """Every week of the period, with 0 for a week without a time-out (said only when every
    time-out's date was shared: otherwise a 0 could be untrue)."""
    labels: list[str] = []
    day = since - dt.timedelta(days=since.weekday())
    while day <= until:
        labels.append(str(day.isocalendar().week))
        day += dt.timedelta(days=7)
    return labels, [counted.get(w, 0) for w in labels]


def _evaluation_text(ev: dict[str, bool | str] | None, lang: Lang) -> str:
    if ev is None:
        return _ns(lang)
    parts = [tr(f"eval.{k}.{ev[k]}", lang) for k in ("long_enough", "more_time", "discuss",
                                                     "decided_by") if k in ev]
    return escape("; ".join(parts)) if parts else escape(tr("eval_none", lang))


def _timeout_article(n: int, t: SharedTimeout, lang: Lang, tz: dt.tzinfo | None) -> str:
    ns = _ns(lang)
    start = escape(_local(t.started, tz).strftime("%Y-%m-%d %H:%M")) if t.started else ns
    length = escape(tr("minutes", lang, minutes=f"{t.minutes:g}")) if t.minutes is not None else ns
    rounds = str(t.rounds) if t.rounds is not None else ns
    outcome = escape(tr(f"outcome.{t.outcome}", lang)) if t.outcome else ns
    early = "<br>".join(
        f"{_partner(p, lang)}: "
        + (str(t.early_returns[p]) if t.early_returns is not None and p in t.early_returns else ns)
        for p in PARTNERS)
    calls = []
    for p in PARTNERS:
        cs = _calls_of(t, p)
        calls.append(f"{_partner(p, lang)}: " + (ns if cs is None else _calls_text(cs, lang)))
    calls_html = "<br>".join(calls)
    if t.calls is not None and t.call_partners is None:   # a summary from before call_partners
        calls_html = (_calls_text(t.calls, lang) + " ("
                      + escape(tr("calls_unknown_partners", lang)) + ")")
    if t.thermometer is None:
        thermo = ns
    elif not t.thermometer:
        thermo = escape(tr("thermo_empty", lang))
    else:
        thermo = thermometer_svg(t.thermometer, salt=f"t{n}", title=tr("thermometer", lang),
                                 x_label=tr("axis_minutes", lang), y_label=tr("axis_tension", lang),
                                 start_label=tr("axis_start", lang))
    rows = [("start", start), ("length", length), ("rounds", rounds), ("outcome", outcome),
            ("early", early), ("calls", calls_html),
            ("evaluation", _evaluation_text(t.evaluation, lang))]
    dl = "\n".join(f"<dt>{escape(tr(k, lang))}</dt><dd>{v}</dd>" for k, v in rows)
    return (f'<article class="timeout" id="timeout-{n}">\n<h3>{escape(tr("timeout_n", lang, n=n))}'
            f'</h3>\n<dl>\n{dl}\n</dl>\n<figure class="thermometer"><figcaption>'
            f'{escape(tr("thermometer", lang))}</figcaption>\n{thermo}\n</figure>\n</article>')


def _topics_section(topics: list[SharedTopics], timeouts: list[SharedTimeout], lang: Lang,
                    tz: dt.tzinfo | None) -> str:
    lines = [f'<p class="meta">{escape(tr("topics_note", lang))}</p>']
    unshared = sum(t.evaluation is None for t in timeouts)
    if topics:
        items = "".join(
            "<li>" + escape(tr("topics_kept", lang, day=_local(k.ts, tz).date().isoformat(),
                               session=k.session_date or tr("session_unplanned", lang),
                               count=k.count)) + "</li>" for k in topics)
        lines.append(f"<ul>{items}</ul>")
    elif timeouts and unshared == len(timeouts):
        lines.append(f"<p>{_ns(lang)}</p>")
        return "\n".join(lines)
    else:
        lines.append(f"<p>{escape(tr('topics_none', lang))}</p>")
    if unshared:
        lines.append(f"<p>{escape(tr('topics_partly', lang, missing=unshared, total=len(timeouts)))}"
                     "</p>")
    return "\n".join(lines)


def render_html(household: str, items: Sequence[SharedTimeout | SharedTopics], since: dt.date,
                until: dt.date, lang: Lang = "nl", *, tz: dt.tzinfo | None = None) -> str:
    """The report of the summaries whose time lies in [since, until] (local dates in `tz`, the
    system's zone by default)."""
    def inside(ts: dt.datetime) -> bool:
        return since <= _local(ts, tz).date() <= until

    timeouts = [i for i in items if isinstance(i, SharedTimeout) and inside(i.ts)]
    topics = [i for i in items if isinstance(i, SharedTopics) and inside(i.ts)]
    timeouts.sort(key=lambda t: t.ts)
    topics.sort(key=lambda t: t.ts)
    head = (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(tr('title', lang))} · {escape(household)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n")
    parts = [f"<h1>{escape(tr('title', lang))}</h1>",
             f'<p class="meta">{escape(tr("household", lang, household=household))}</p>',
             f'<p class="meta">{escape(tr("period", lang, since=since.isoformat(), until=until.isoformat()))}</p>',
             f'<p class="intro">{escape(tr("intro", lang))}</p>',
             f'<section id="weeks"><h2>{escape(tr("weeks", lang))}</h2>']
    if timeouts:
        rows, labels, counts = _week_rows(timeouts, lang, tz)
        heads = "".join(f"<th>{escape(tr(k, lang))}</th>" for k in
                        ("week", "col_timeouts", "col_rounds", "col_early", "col_calls"))
        parts.append(f"<table><thead><tr>{heads}</tr></thead><tbody>\n{rows}\n</tbody></table>")
        if all(t.started is not None for t in timeouts):
            labels, counts = _all_weeks(since, until, dict(zip(labels, counts, strict=True)))
        if counts:
            parts.append('<figure class="weeks-chart"><figcaption>'
                         f'{escape(tr("chart_title", lang))}</figcaption>'
                         + weeks_svg(labels, counts, salt="weeks", title=tr("chart_title", lang),
                                     x_label=tr("week", lang))
                         + "</figure>")
    else:
        parts.append(f"<p>{escape(tr('no_timeouts', lang))}</p>")
    parts.append("</section>")
    if timeouts:
        parts.append(f'<section id="timeouts"><h2>{escape(tr("timeouts", lang))}</h2>')
        parts += [_timeout_article(n, t, lang, tz) for n, t in enumerate(timeouts, 1)]
        parts.append("</section>")
    parts.append(f'<section id="topics"><h2>{escape(tr("topics", lang))}</h2>')
    parts.append(_topics_section(topics, timeouts, lang, tz))
    parts.append("</section>")
    return head + "\n".join(parts) + "\n</body>\n</html>\n"
