"""The HTML report in a real headless Chromium: no console errors, charts drawn with data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from maildesk.report import Period, report_from_database
from maildesk.report.render_html import AMBER, BLUE, GREEN, PURPLE, RED, TEAL, render_html
from tests.browser import charts_in, colour_counts, open_page
from tests.report_history import CALENDAR, NOW, PERIOD_END, PERIOD_START, load_history
from tests.test_report import AGENTS


@pytest.fixture
def page(desk, tmp_path) -> Path:
    load_history(desk.engine)
    report = report_from_database(
        desk.engine,
        Period(PERIOD_START, PERIOD_END),
        now=NOW,
        calendar=CALENDAR,
        by="queue",
        agent_names=AGENTS,
    )
    path = tmp_path / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def test_page_loads_nothing_from_the_network(page):
    html = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<script" not in html
    assert "default-src 'none'" in html  # anything external would be blocked and logged


def test_charts_render_with_data_and_no_console_errors(page, tmp_path):
    run = open_page(page, tmp_path / "profile", "--dump-dom")
    assert run.console == []
    charts = charts_in(run.dom)
    assert set(charts) == {"volume", "response-times", "sla", "load", "satisfaction"}

    def values(chart, series):
        return [float(b["data-value"]) for b in charts[chart] if b["data-series"] == series]

    assert sum(values("volume", "created")) == 160
    assert sum(values("volume", "resolved")) == 160
    assert values("volume", "open")[-1] == 40  # the backlog line ends at the open tickets
    assert values("response-times", "first response") == [40, 100]  # <1h and 1–4h
    assert values("sla", "breached")[0] == pytest.approx(90 / 140)  # all tickets first
    assert values("load", "open") == [20, 20]  # Carol and the unassigned
    assert values("satisfaction", "ratings") == [3, 5, 2, 5, 12]
    assert "Carol Chen" in run.dom and "64.3%" in run.dom


def test_screenshot_shows_the_charts(page, tmp_path):
    shot = tmp_path / "report.png"
    run = open_page(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1500,1800")
    assert run.console == []
    counts = colour_counts(
        shot,
        {
            "created": BLUE,
            "resolved": GREEN,
            "backlog": AMBER,
            "first": PURPLE,
            "resolution": TEAL,
            "breached": RED,
        },
    )
    # Every chart colour covers a visible area (bars are at least a few hundred pixels).
    assert min(counts.values()) > 300, counts


def test_console_errors_are_detected(tmp_path):
    """The check above can fail: a page with a script error and a blocked load is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        'content="default-src \'none\'"></head><body><img src="https://example.com/x.png">'
        "<script>undefinedFunction()</script></body></html>"
    )
    run = open_page(bad, tmp_path / "profile", "--dump-dom")
    assert any("Content Security Policy" in line for line in run.console)


def test_empty_period_says_so_instead_of_drawing(desk):
    report = report_from_database(desk.engine, Period(PERIOD_START, PERIOD_END), now=NOW)
    html = render_html(report)
    assert html.count("No data in this period.") == 5
    assert 'class="bar"' not in html
