"""`maildesk report`: the figures a support lead asks for, as a table, JSON, CSV or HTML."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from maildesk.cli.common import CliContext, echo, pass_cli, print_json
from maildesk.common.business_hours import Calendar
from maildesk.report import GROUPINGS, Period, report_from_database
from maildesk.store.db import read_engine

DEFAULT_DAYS = 30


def report_calendar(desk: Any) -> Calendar:
    """The business-hours calendar durations are measured in: the default route's
    calendar in rules.yaml, else wall-clock time (24/7, UTC)."""
    rules = desk.rules()
    name = getattr(rules, "default_calendar", None)
    calendar = rules.calendars.get(name) if name else None
    return calendar or Calendar.always_open()


def parse_moment(text: str, tz: ZoneInfo, *, end: bool) -> datetime:
    """YYYY-MM-DD as a whole day in `tz` (an end date includes that day), or an ISO time."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(0), tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date; use YYYY-MM-DD (e.g. 2026-11-01) or an ISO time "
            "(2026-11-01T09:00 or 2026-11-01T09:00+01:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def default_period(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The last 30 days, today included."""
    today = now.astimezone(tz).date()
    end = datetime.combine(today + timedelta(days=1), time(0), tz)
    return end - timedelta(days=DEFAULT_DAYS), end


@click.command()
@click.option(
    "--since", metavar="DATE", help="First day (YYYY-MM-DD) or time; default: the last 30 days."
)
@click.option("--until", metavar="DATE", help="Last day, included (YYYY-MM-DD), or end time.")
@click.option("--by", type=click.Choice(GROUPINGS), help="One row per queue, agent, ... or week.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (format in the README).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per group, then totals.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML page with charts to this file.",
)
@click.option("--now", "now_text", hidden=True, help="Report as if it were this ISO time.")
@pass_cli
def report(
    cli: CliContext,
    since: str | None,
    until: str | None,
    by: str | None,
    as_json: bool,
    as_csv: bool,
    html_file: Path | None,
    now_text: str | None,
) -> None:
    """Tickets created, resolved and open; response and resolution times; SLA breaches;
    reopens; load per agent; satisfaction. Durations are in business hours."""
    if sum((as_json, as_csv, html_file is not None)) > 1:
        raise click.UsageError("choose one of --json, --csv and --html")
    desk = cli.desk()
    calendar = report_calendar(desk)
    tz = calendar.tz
    now = parse_moment(now_text, tz, end=False) if now_text else datetime.now(UTC)
    start, end = default_period(now, tz)
    if since:
        start = parse_moment(since, tz, end=False)
    if until:
        end = parse_moment(until, tz, end=True)
    if end <= start:
        raise click.UsageError("--until must be after --since")
    agents = {a.address: a.name for a in desk.rules.current.agents.values()}
    engine = read_engine(desk.config.database_url())
    try:
        result = report_from_database(
            engine,
            Period(start.astimezone(UTC), end.astimezone(UTC)),
            now=now.astimezone(UTC),
            calendar=calendar,
            by=by,
            agent_names=agents,
        )
    finally:
        engine.dispose()
    _emit(result, as_json, as_csv, html_file)


def _emit(result: Any, as_json: bool, as_csv: bool, html_file: Path | None) -> None:
    from maildesk.report.export import report_csv, report_dict

    if as_json:
        print_json(report_dict(result))
    elif as_csv:
        echo(report_csv(result), nl=False)
    elif html_file is not None:
        from maildesk.report.render_html import render_html

        html_file.write_text(render_html(result), encoding="utf-8")
        echo(f"wrote {html_file}")
    else:
        from maildesk.report.render_text import render_text

        echo(render_text(result), nl=False)


COMMANDS = {c.name: c for c in [report]}
