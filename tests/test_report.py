"""`maildesk report` over a scripted history whose every figure is known (tests/report_history.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from maildesk.cli import cli
from maildesk.common.business_hours import Calendar
from maildesk.report import Period, report_from_database
from maildesk.report.export import report_dict
from maildesk.report.figures import quantile
from maildesk.report.render_text import render_text
from tests.report_history import (
    ALICE,
    BERLIN,
    BOB,
    CALENDAR,
    CAROL,
    NOW,
    PERIOD_END,
    PERIOD_START,
    load_history,
)

AGENTS = {ALICE: "Alice Archer", BOB: "Bob Baker", CAROL: "Carol Chen"}
H = 3600


@pytest.fixture
def history_desk(desk):
    assert load_history(desk.engine) == 210
    return desk


def run(desk, start=PERIOD_START, end=PERIOD_END, by=None, calendar=CALENDAR):
    return report_from_database(
        desk.engine, Period(start, end), now=NOW, calendar=calendar, by=by, agent_names=AGENTS
    )


def figures(data):
    """The figures of a JSON group, in a compact comparable form."""
    return {
        "created": data["created"],
        "resolved": data["resolved"],
        "backlog": data["backlog"],
        "first_response": data["first_response"],
        "resolution": data["resolution"],
        "sla": data["sla"],
        "reopens": (data["reopens"], data["reopened_tickets"]),
        "ratings": data["satisfaction"]["distribution"],
    }


def test_totals_for_the_month(history_desk):
    totals = report_dict(run(history_desk))["totals"]
    assert totals["created"] == 160  # D was created before the period; spam and merged left out
    assert totals["resolved"] == 160
    assert totals["backlog"] == 40  # B of 27 Nov, D unresolved, E of 26 Nov
    # Sorted first responses: 1800×10, 2700×30, 3600×30, 5400×40, 7200×30 (140).
    assert totals["first_response"] == {
        "count": 140,
        "median_seconds": 4500.0,
        "p90_seconds": 7200.0,
    }
    # Resolutions: 1800×10, 18000×40, 28800×60, 30600×30, 151200×20 (160).
    assert totals["resolution"] == {
        "count": 160,
        "median_seconds": 28800.0,
        "p90_seconds": 151200.0,
    }
    assert totals["sla"] == {
        "tickets": 140,
        "breached": 90,
        "breached_share": 90 / 140,
        "first_response_breached": 80,
        "resolution_breached": 10,
    }
    assert (totals["reopens"], totals["reopened_tickets"]) == (20, 15)
    assert totals["satisfaction"] == {
        "ratings": 27,
        "average": 99 / 27,
        "satisfied": 17,
        "satisfied_share": 17 / 27,
        "distribution": {"1": 3, "2": 5, "3": 2, "4": 5, "5": 12},
    }


def test_business_hours_arithmetic_per_pattern(history_desk):
    """Weekend, holiday and the change to winter time, each alone in a one-day period."""

    def day(d, by=None):
        start = datetime(2026, d[0], d[1], tzinfo=BERLIN)
        return report_dict(run(history_desk, start, start + timedelta(days=1), by=by))["totals"]

    assert day((11, 9))["first_response"] == {  # A: 1.5 h; B: 2 h over the weekend
        "count": 20,
        "median_seconds": 6300.0,
        "p90_seconds": 7200.0,
    }
    assert day((11, 18))["first_response"] == {  # C answered on the holiday: half an hour
        "count": 10,
        "median_seconds": 1800.0,
        "p90_seconds": 1800.0,
    }
    assert day((11, 19))["resolution"]["count"] == 10  # C resolved the day after the holiday
    assert day((11, 19))["resolution"]["median_seconds"] == 1800
    assert day((11, 12))["resolution"]["median_seconds"] == 8.5 * H  # C over a normal night
    # D: Friday 16:00 summer time to Monday 10:00 a week later in winter time: 42 business hours.
    assert day((11, 2))["resolution"]["p90_seconds"] == 42 * H


def test_wall_clock_when_always_open(history_desk):
    start = datetime(2026, 11, 9, tzinfo=BERLIN)
    report = run(history_desk, start, start + timedelta(days=1), calendar=Calendar.always_open())
    # B: Friday 16:00 to Monday 10:00 is 66 hours on the wall clock.
    assert report.totals.first_response.p90 == 66 * H


def test_by_week(history_desk):
    groups = report_dict(run(history_desk, by="week"))["groups"]
    assert [g["label"] for g in groups] == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert [(g["created"], g["resolved"], g["backlog"]) for g in groups] == [
        (40, 50, 30),
        (40, 40, 30),
        (40, 40, 30),
        (40, 30, 40),
    ]
    assert [g["first_response"] for g in groups] == [
        {"count": 30, "median_seconds": 3600.0, "p90_seconds": 5400.0},
        {"count": 40, "median_seconds": 4500.0, "p90_seconds": 7200.0},
        {"count": 40, "median_seconds": 4050.0, "p90_seconds": 7200.0},
        {"count": 30, "median_seconds": 5400.0, "p90_seconds": 7200.0},
    ]
    assert groups[0]["resolution"] == {
        "count": 50,
        "median_seconds": 30600.0,
        "p90_seconds": 151200.0,
    }
    assert [(g["sla"]["tickets"], g["sla"]["breached"]) for g in groups] == [
        (40, 30),
        (40, 20),
        (30, 20),
        (30, 20),
    ]
    assert [g["reopens"] for g in groups] == [10, 0, 0, 10]
    assert [g["satisfaction"]["distribution"] for g in groups] == [
        {"1": 0, "2": 0, "3": 0, "4": 0, "5": 12},
        {"1": 0, "2": 5, "3": 0, "4": 5, "5": 0},
        {"1": 3, "2": 0, "3": 2, "4": 0, "5": 0},
        {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    ]
    assert groups[0]["start"] == "2026-11-01T23:00:00Z"  # Monday 00:00 in Berlin


def test_by_month_is_one_bucket(history_desk):
    groups = report_dict(run(history_desk, by="month"))["groups"]
    assert [(g["label"], g["created"], g["resolved"], g["backlog"]) for g in groups] == [
        ("2026-11", 160, 160, 40)
    ]


def test_by_queue_agent_and_priority(history_desk):
    def rows(by):
        return [
            (g["label"], g["created"], g["resolved"], g["backlog"])
            for g in report_dict(run(history_desk, by=by))["groups"]
        ]

    assert rows("queue") == [("billing", 80, 60, 20), ("general", 80, 100, 20)]
    assert rows("agent") == [
        ("Alice Archer", 40, 40, 0),
        ("Bob Baker", 40, 40, 0),
        ("Carol Chen", 80, 60, 20),
        ("(unassigned)", 0, 20, 20),
    ]
    assert rows("priority") == [
        ("urgent", 0, 20, 20),
        ("high", 40, 30, 10),
        ("normal", 80, 70, 10),
        ("low", 40, 40, 0),
    ]
    carol = report_dict(run(history_desk, by="agent"))["groups"][2]
    assert carol["key"] == CAROL
    # B 7200×30 and E 2700×30: median between the two middle ones, p90 at the top.
    assert carol["first_response"] == {"count": 60, "median_seconds": 4950.0, "p90_seconds": 7200.0}
    assert carol["sla"]["breached"] == 80


def test_load_per_agent_puts_the_busiest_first(history_desk):
    load = report_dict(run(history_desk))["load"]
    assert [(a["label"], a["open"], a["resolved"]) for a in load] == [
        ("Carol Chen", 20, 60),
        ("Alice Archer", 0, 40),
        ("Bob Baker", 0, 40),
        ("(unassigned)", 20, 20),
    ]


def test_volume_and_distribution_for_charts(history_desk):
    data = report_dict(run(history_desk))
    assert data["volume"]["unit"] == "day"
    buckets = data["volume"]["buckets"]
    assert len(buckets) == 28
    assert sum(b["created"] for b in buckets) == 160
    assert buckets[0] == {
        "label": "2026-11-02",
        "start": "2026-11-01T23:00:00Z",
        "created": 10,
        "resolved": 30,
        "backlog": 20,  # D's twenty still open; A's ten were resolved the same day
    }
    assert data["distribution"]["buckets"] == ["<1h", "1–4h", "4–8h", "8–24h", "24–72h", "≥72h"]
    assert data["distribution"]["first_response"] == [40, 100, 0, 0, 0, 0]
    assert data["distribution"]["resolution"] == [10, 0, 40, 90, 20, 0]
    assert len(data["comments"]) == 10
    assert data["comments"][0] == {
        "ref": data["comments"][0]["ref"],
        "rating": 5,
        "comment": "Quick and kind.",
        "rated_at": "2026-11-06T12:00:00Z",
    }


def test_quiet_period_keeps_the_backlog(history_desk):
    start = datetime(2026, 12, 1, tzinfo=BERLIN)
    data = report_dict(run(history_desk, start, datetime(2026, 12, 15, tzinfo=BERLIN)))
    totals = data["totals"]
    assert (totals["created"], totals["resolved"], totals["backlog"]) == (0, 0, 30)
    assert totals["first_response"] == {"count": 0, "median_seconds": None, "p90_seconds": None}
    assert totals["resolution"]["median_seconds"] is None
    assert totals["sla"]["breached_share"] is None
    assert totals["satisfaction"]["average"] is None
    assert data["comments"] == []


def test_period_before_any_ticket_is_all_zero(history_desk):
    report = run(history_desk, datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    data = report_dict(report)
    assert figures(data["totals"]) == {
        "created": 0,
        "resolved": 0,
        "backlog": 0,
        "first_response": {"count": 0, "median_seconds": None, "p90_seconds": None},
        "resolution": {"count": 0, "median_seconds": None, "p90_seconds": None},
        "sla": {
            "tickets": 0,
            "breached": 0,
            "breached_share": None,
            "first_response_breached": 0,
            "resolution_breached": 0,
        },
        "reopens": (0, 0),
        "ratings": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    }
    text = render_text(report)
    assert "none in this period" in text and "no ratings" in text


def test_empty_database_reports_zero(desk):
    report = run(desk)
    assert report.totals.created == 0 and report.load == []
    assert "tickets created        0" in render_text(report)


def test_quantile_interpolates_like_spreadsheets():
    assert quantile([], 0.5) is None
    assert quantile([7.0], 0.9) == 7.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([10.0 * i for i in range(1, 11)], 0.9) == pytest.approx(91.0)


def test_text_report_reads_like_a_table(history_desk):
    text = render_text(run(history_desk, by="queue"))
    assert "maildesk report: 2026-11-02 to 2026-11-29 (Europe/Berlin)" in text
    assert "first response         median 1h 15m · 90th percentile 2h 00m (140 tickets)" in text
    assert "SLA breaches           90 of 140 tickets with a target (64.3%)" in text
    assert "average 3.67 from 27 ratings · 63.0% satisfied (4–5)" in text
    table = text.split("by queue\n")[1].splitlines()
    assert table[0].split()[:4] == ["QUEUE", "CREATED", "RESOLVED", "OPEN"]
    assert table[2].split()[:4] == ["billing", "80", "60", "20"]


def _cli(desk, monkeypatch, *args):
    monkeypatch.setattr("maildesk.cli.report.report_calendar", lambda desk: CALENDAR)
    result = CliRunner().invoke(
        cli,
        ["--config", desk.config.source, "report", "--now", "2026-12-15T12:00:00+00:00", *args],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_json_uses_whole_local_days(history_desk, monkeypatch):
    out = _cli(
        history_desk, monkeypatch, "--since", "2026-11-02", "--until", "2026-11-29", "--json"
    )
    data = json.loads(out)
    assert data["period"] == {"since": "2026-11-01T23:00:00Z", "until": "2026-11-29T23:00:00Z"}
    assert data["business_hours"] == "Europe/Berlin: mon–fri 09:00–17:00; 1 holiday"
    assert (data["totals"]["created"], data["totals"]["backlog"]) == (160, 40)
    assert data["totals"]["first_response"]["median_seconds"] == 4500


def test_cli_csv_has_a_row_per_group_and_totals(history_desk, monkeypatch):
    out = _cli(
        history_desk,
        monkeypatch,
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-29",
        "--by",
        "priority",
        "--csv",
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["group"] for r in rows] == ["urgent", "high", "normal", "low", "*"]
    total = rows[-1]
    assert (total["created"], total["resolved"], total["backlog"]) == ("160", "160", "40")
    assert total["first_response_median_seconds"] == "4500"
    assert total["sla_breached_share"] == "0.642857"
    assert rows[0]["resolution_median_seconds"] == str(42 * H)
    assert rows[0]["first_response_median_seconds"] == ""  # urgent: no first response in November


def test_cli_text_and_html_and_bad_dates(history_desk, monkeypatch, tmp_path):
    text = _cli(
        history_desk, monkeypatch, "--since", "2026-11-02", "--until", "2026-11-29", "--by", "agent"
    )
    assert "Carol Chen" in text and "load per agent" in text
    page = tmp_path / "report.html"
    assert "wrote" in _cli(history_desk, monkeypatch, "--since", "2026-11-02", "--html", str(page))
    assert page.read_text().startswith("<!DOCTYPE html>")
    result = CliRunner().invoke(
        cli, ["--config", history_desk.config.source, "report", "--since", "last week"]
    )
    assert result.exit_code != 0 and "use YYYY-MM-DD" in result.output
    result = CliRunner().invoke(
        cli, ["--config", history_desk.config.source, "report", "--json", "--csv"]
    )
    assert result.exit_code != 0 and "choose one of" in result.output


@pytest.mark.postgres
def test_same_figures_on_postgresql(make_desk, postgres_url):
    desk = make_desk("pg", database_url=postgres_url)
    load_history(desk.engine)
    data = report_dict(run(desk, by="week"))
    assert figures(data["totals"])["first_response"] == {
        "count": 140,
        "median_seconds": 4500.0,
        "p90_seconds": 7200.0,
    }
    assert (data["totals"]["created"], data["totals"]["resolved"], data["totals"]["backlog"]) == (
        160,
        160,
        40,
    )
    assert data["totals"]["sla"]["breached"] == 90  # recorded sla_state read from JSON
    assert [g["backlog"] for g in data["groups"]] == [30, 30, 30, 40]
