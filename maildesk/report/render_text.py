"""The report as a readable terminal page: the totals, then a table per group and per agent."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from maildesk.report.build import Group, Report
from maildesk.report.export import describe_calendar
from maildesk.report.figures import Durations, Figures, SlaFigures


def duration(seconds: float | None) -> str:
    """Business time as '45s', '12m', '3h 05m' (hours, never days: a business day varies)."""
    if seconds is None:
        return "-"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def moment_text(moment: datetime, report: Report) -> str:
    """'2026-11-23 17:22 Europe/Berlin': a time in the report's time zone, to the minute."""
    return f"{moment.astimezone(report.calendar.tz):%Y-%m-%d %H:%M} {report.calendar.timezone}"


def period_text(report: Report) -> str:
    """'2026-11-01 to 2026-11-30 (Europe/Berlin)': whole days shown as dates, the end inclusive."""
    tz = report.calendar.tz

    def show(moment: datetime, end: bool = False) -> str:
        local = moment.astimezone(tz)
        if local.time() != time(0):
            return f"{local:%Y-%m-%d %H:%M}"
        return f"{local - timedelta(days=1) if end else local:%Y-%m-%d}"

    start = show(report.period.start) if report.period.start else "the beginning"
    return f"{start} to {show(report.period.end, end=True)} ({report.calendar.timezone})"


def _durations(d: Durations) -> str:
    if not d.count:
        return "none in this period"
    return f"median {duration(d.median)} · 90th percentile {duration(d.p90)} ({d.count} tickets)"


def _sla(s: SlaFigures) -> str:
    if not s.tickets:
        return "no tickets with an SLA target"
    return (
        f"{s.breached} of {s.tickets} tickets with a target ({percent(s.share)}): "
        f"first response {s.first_response_breached}, resolution {s.resolution_breached}"
    )


def _satisfaction(f: Figures) -> str:
    s = f.satisfaction
    if not s.ratings:
        return "no ratings"
    spread = " ".join(f"{i + 1}:{n}" for i, n in enumerate(s.distribution))
    return (
        f"average {s.average:.2f} from {s.ratings} ratings · {percent(s.satisfied_share)} "
        f"satisfied (4–5) · {spread}"
    )


def render_text(report: Report) -> str:
    """The whole report as text lines for a terminal."""
    f = report.totals
    lines = [
        f"maildesk report: {period_text(report)}",
        f"business hours: {describe_calendar(report)}",
        "",
        f"  tickets created        {f.created}",
        f"  tickets resolved       {f.resolved}",
        f"  open at end (backlog)  {f.backlog}",
        f"  first response         {_durations(f.first_response)}",
        f"  resolution             {_durations(f.resolution)}",
        f"  SLA breaches           {_sla(f.sla)}",
        f"  reopens                {f.reopens} ({f.reopened_tickets} tickets)",
        f"  satisfaction           {_satisfaction(f)}",
    ]
    if report.groups:
        lines += ["", f"by {report.by}", *_table(report.groups, report.by or "group")]
    if report.load:
        lines += ["", "load per agent", *_load_table(report.load)]
    if report.comments:
        lines += ["", "rating comments (newest first)"]
        for c in report.comments[:10]:
            text = " ".join(c.comment.split())
            text = text if len(text) <= 70 else text[:69] + "…"
            lines.append(f"  {c.ref:<10} {c.rating}  {text}")
        if len(report.comments) > 10:
            lines.append(f"  … and {len(report.comments) - 10} more (see --json or --html)")
    return "\n".join(lines) + "\n"


def _table(groups: list[Group], title: str) -> list[str]:
    header = [
        title.upper(),
        "CREATED",
        "RESOLVED",
        "OPEN",
        "1ST RESP MED",
        "1ST RESP P90",
        "RESOL MED",
        "RESOL P90",
        "SLA BREACH",
        "REOPENS",
        "RATING",
    ]
    rows = [
        [
            g.label,
            str(g.figures.created),
            str(g.figures.resolved),
            str(g.figures.backlog),
            duration(g.figures.first_response.median),
            duration(g.figures.first_response.p90),
            duration(g.figures.resolution.median),
            duration(g.figures.resolution.p90),
            percent(g.figures.sla.share),
            str(g.figures.reopens),
            _rating(g.figures),
        ]
        for g in groups
    ]
    return _align([header, *rows], numeric_from=1)


def _rating(f: Figures) -> str:
    s = f.satisfaction
    return "-" if s.average is None else f"{s.average:.1f} ({s.ratings})"


def _load_table(load: list[Group]) -> list[str]:
    rows = [["AGENT", "OPEN", "RESOLVED", "CREATED"]] + [
        [g.label, str(g.figures.backlog), str(g.figures.resolved), str(g.figures.created)]
        for g in load
    ]
    return _align(rows, numeric_from=1)


def _align(table: list[list[str]], numeric_from: int) -> list[str]:
    """Left-align the first columns, right-align the numbers; a rule under the header."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out = []
    for index, row in enumerate(table):
        cells = [
            c.ljust(w) if i < numeric_from else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  " + "  ".join(cells).rstrip())
        if index == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out
