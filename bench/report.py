"""Benchmark: `maildesk report` over 100,000 tickets on SQLite (target: under 5 seconds).

Generates a year of tickets with a fixed seed (bulk insert through SQLAlchemy Core),
then times the report in-process (load + figures, per output format) and through the
CLI in a fresh process. Prints the figures; nothing is asserted.

    python bench/report.py [--tickets 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from maildesk.common.business_hours import Calendar
from maildesk.report import Period, report_from_database
from maildesk.report.export import report_csv, report_dict
from maildesk.report.render_html import render_html
from maildesk.report.render_text import render_text
from maildesk.store.db import make_engine, read_engine, upgrade
from maildesk.store.models import Ticket

START = datetime(2025, 11, 24, tzinfo=UTC)
QUEUES = ["general", "billing", "russian", "sales", "outage"]
AGENTS = [f"agent{i}@example.com" for i in range(25)]
PRIORITIES = ["low", "normal", "normal", "normal", "high", "urgent"]


def generate(n: int, seed: int = 7) -> list[dict]:
    """n tickets over a year: most answered and resolved, some open, rated or reopened."""
    rnd = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        created = START + timedelta(seconds=rnd.randrange(365 * 86400))
        answered = rnd.random() < 0.95
        first = created + timedelta(minutes=rnd.expovariate(1 / 240)) if answered else None
        resolved = (
            first + timedelta(hours=rnd.expovariate(1 / 30))
            if first and rnd.random() < 0.9
            else None
        )
        rated = resolved is not None and rnd.random() < 0.2
        breached = rnd.random() < 0.1
        rows.append(
            {
                "ref": f"MD-{i}",
                "subject": f"request {i}",
                "status": "resolved" if resolved else "open",
                "priority": rnd.choice(PRIORITIES),
                "queue": rnd.choice(QUEUES),
                "assignee": rnd.choice(AGENTS) if rnd.random() < 0.9 else None,
                "requester": f"customer{i % 5000}@example.org",
                "message_id": f"md-{i}@example.com",
                "created_at": created,
                "updated_at": resolved or first or created,
                "first_response_at": first,
                "resolved_at": resolved,
                "first_response_due": created + timedelta(hours=4),
                "resolution_due": created + timedelta(days=3),
                "sla_state": {"first_response_breached": True} if breached else {},
                "reopen_count": 1 if rnd.random() < 0.05 else 0,
                "rating": rnd.randint(1, 5) if rated else None,
                "rated_at": resolved + timedelta(hours=2) if rated and resolved else None,
                "rating_comment": "thanks" if rated and rnd.random() < 0.3 else None,
            }
        )
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Keep the generated desk in this folder.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="maildesk-bench-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "maildesk.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    upgrade(engine)
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    started = time.perf_counter()
    rows = generate(args.tickets)
    with engine.begin() as conn:
        for chunk in range(0, len(rows), 10_000):
            conn.execute(insert(Ticket.__table__), rows[chunk : chunk + 10_000])
    engine.dispose()
    del rows
    gc.collect()
    print(
        f"generated {args.tickets} tickets in {time.perf_counter() - started:.1f} s ({db.stat().st_size / 2**20:.0f} MiB)"
    )

    period = Period(START, START + timedelta(days=366))
    now = START + timedelta(days=400)
    calendars = {
        "24/7": Calendar.always_open(),
        "office Europe/Berlin": Calendar.office("Europe/Berlin"),
    }
    reader = read_engine(url)
    for name, calendar in calendars.items():
        for by in (None, "agent", "week"):
            started, cpu = time.perf_counter(), time.process_time()
            report = report_from_database(reader, period, now=now, calendar=calendar, by=by)
            built, cpu = time.perf_counter() - started, time.process_time() - cpu
            outputs = {
                "text": render_text,
                "json": report_dict,
                "csv": report_csv,
                "html": render_html,
            }
            timings = []
            for out_name, render in outputs.items():
                t0 = time.perf_counter()
                render(report)
                timings.append(f"{out_name} {time.perf_counter() - t0:.2f}")
            print(
                f"in-process  {name:22} by {by or '-':6}: report {built:.2f} s (CPU {cpu:.2f} s) "
                f"(+ render: {', '.join(timings)} s); {report.totals.created} created"
            )
    reader.dispose()
    print(f"peak RSS of the benchmark process: {peak_rss_mib():.0f} MiB")

    config = folder / "maildesk.yaml"
    config.write_text(f"database:\n  url: sqlite:///{db}\n", encoding="utf-8")
    shutil.copyfile(Path(__file__).resolve().parents[1] / "rules.yaml", folder / "rules.yaml")
    for extra in ([], ["--by", "week"], ["--json"], ["--html", str(folder / "report.html")]):
        command = [
            sys.executable,
            "-c",
            "from maildesk.cli import main; main()",
            "--config",
            str(config),
            "report",
            "--since",
            "2025-11-24",
            "--until",
            "2026-11-24",
            *extra,
        ]
        started, cpu = time.perf_counter(), _children_cpu()
        done = subprocess.run(command, capture_output=True, text=True)
        elapsed, cpu = time.perf_counter() - started, _children_cpu() - cpu
        if done.returncode != 0:
            sys.exit(f"CLI failed: {done.stderr}")
        shown = " ".join("FILE" if a.endswith(".html") else a for a in extra) or "(table)"
        print(f"CLI (new process) report {shown:14}: {elapsed:.2f} s wall, CPU {cpu:.2f} s")
    print(f"load average after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
