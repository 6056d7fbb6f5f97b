"""The report as JSON-ready data and as CSV: stable formats documented in the README."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import datetime
from typing import Any

from maildesk.common.business_hours import Calendar
from maildesk.common.json_time import json_time
from maildesk.report.build import HISTOGRAM_EDGES_HOURS, Group, Report
from maildesk.report.figures import Figures

FORMAT_VERSION = 1


def figures_dict(f: Figures) -> dict[str, Any]:
    """One group's figures; durations in seconds of business time, shares from 0 to 1."""
    s = f.satisfaction
    return {
        "created": f.created,
        "resolved": f.resolved,
        "backlog": f.backlog,
        "first_response": {
            "count": f.first_response.count,
            "median_seconds": f.first_response.median,
            "p90_seconds": f.first_response.p90,
        },
        "resolution": {
            "count": f.resolution.count,
            "median_seconds": f.resolution.median,
            "p90_seconds": f.resolution.p90,
        },
        "sla": {
            "tickets": f.sla.tickets,
            "breached": f.sla.breached,
            "breached_share": f.sla.share,
            "first_response_breached": f.sla.first_response_breached,
            "resolution_breached": f.sla.resolution_breached,
        },
        "reopens": f.reopens,
        "reopened_tickets": f.reopened_tickets,
        "satisfaction": {
            "ratings": s.ratings,
            "average": s.average,
            "satisfied": s.satisfied,
            "satisfied_share": s.satisfied_share,
            "distribution": {str(i + 1): n for i, n in enumerate(s.distribution)},
        },
    }


def group_dict(group: Group) -> dict[str, Any]:
    data: dict[str, Any] = {"key": group.key, "label": group.label}
    if group.start is not None:
        data.update(start=json_time(group.start), end=json_time(group.end))
    data.update(figures_dict(group.figures))
    return data


def histogram_labels() -> list[str]:
    """'<1h', '1–4h', ... '≥72h' for the response-time distribution."""
    edges = HISTOGRAM_EDGES_HOURS
    labels = [f"<{edges[0]}h"]
    labels += [f"{a}–{b}h" for a, b in itertools.pairwise(edges)]
    labels.append(f"≥{edges[-1]}h")
    return labels


def report_dict(report: Report) -> dict[str, Any]:
    """The whole report, as `maildesk report --json` prints it."""
    labels = histogram_labels()
    return {
        "format": FORMAT_VERSION,
        "period": {"since": json_time(report.period.start), "until": json_time(report.period.end)},
        "as_of": json_time(report.as_of),
        "generated_at": json_time(report.generated_at),
        "business_hours": describe_calendar(report),
        "by": report.by,
        "totals": figures_dict(report.totals),
        "groups": [group_dict(g) for g in report.groups],
        "volume": {
            "unit": report.volume_unit,
            "buckets": [
                {
                    "label": g.label,
                    "start": json_time(g.start),
                    "created": g.figures.created,
                    "resolved": g.figures.resolved,
                    "backlog": g.figures.backlog,
                }
                for g in report.volume
            ],
        },
        "load": [
            {
                "agent": g.key,
                "label": g.label,
                "open": g.figures.backlog,
                "resolved": g.figures.resolved,
                "created": g.figures.created,
            }
            for g in report.load
        ],
        "distribution": {
            "buckets": labels,
            "first_response": report.first_response_histogram,
            "resolution": report.resolution_histogram,
        },
        "comments": [
            {
                "ref": c.ref,
                "rating": c.rating,
                "comment": c.comment,
                "rated_at": json_time(c.rated_at),
            }
            for c in report.comments
        ],
    }


def describe_calendar(report: Report) -> str:
    """'24/7' or 'Europe/Berlin: mon 09:00–17:00, ...' for headers."""
    cal = report.calendar
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    full = cal.hours == Calendar.always_open().hours
    if full and not cal.holidays:
        return "24/7"
    parts: list[str] = []  # consecutive days with the same hours share one entry
    runs: list[tuple[int, int, str]] = []
    for d in range(7):
        spans = cal.hours.get(d, ())
        hours = ",".join(f"{s:%H:%M}–{e:%H:%M}" for s, e in spans)
        if hours and runs and runs[-1][1] == d - 1 and runs[-1][2] == hours:
            runs[-1] = (runs[-1][0], d, hours)
        elif hours:
            runs.append((d, d, hours))
    for first, last, hours in runs:
        span = days[first] if first == last else f"{days[first]}–{days[last]}"
        parts.append(f"{span} {hours}")
    count = len(cal.holidays)
    holidays = f"; {count} holiday{'s' if count > 1 else ''}" if count else ""
    return f"{cal.timezone}: {', '.join(parts) or 'never open'}{holidays}"


CSV_COLUMNS = [
    "group",
    "label",
    "start",
    "created",
    "resolved",
    "backlog",
    "first_response_count",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_count",
    "resolution_median_seconds",
    "resolution_p90_seconds",
    "sla_tickets",
    "sla_breached",
    "sla_breached_share",
    "first_response_breached",
    "resolution_breached",
    "reopens",
    "reopened_tickets",
    "ratings",
    "rating_average",
    "satisfied_share",
    "rating_1",
    "rating_2",
    "rating_3",
    "rating_4",
    "rating_5",
]


def _csv_row(key: str, label: str, start: datetime | None, f: Figures) -> list[Any]:
    s = f.satisfaction
    return [
        key,
        label,
        json_time(start) or "",
        f.created,
        f.resolved,
        f.backlog,
        f.first_response.count,
        _num(f.first_response.median),
        _num(f.first_response.p90),
        f.resolution.count,
        _num(f.resolution.median),
        _num(f.resolution.p90),
        f.sla.tickets,
        f.sla.breached,
        _num(f.sla.share),
        f.sla.first_response_breached,
        f.sla.resolution_breached,
        f.reopens,
        f.reopened_tickets,
        s.ratings,
        _num(s.average),
        _num(s.satisfied_share),
        *s.distribution,
    ]


def _num(value: float | None) -> str:
    """Empty when there is nothing to measure; whole numbers without '.0'."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}".rstrip("0")


def report_csv(report: Report) -> str:
    """One row per group, then the totals row with group `*`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for g in report.groups:
        writer.writerow(_csv_row(g.key or "", g.label, g.start, g.figures))
    writer.writerow(_csv_row("*", "total", None, report.totals))
    return out.getvalue()
