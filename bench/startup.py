"""Start-up of short `maildesk` commands, each run a new process as a shell or an MTA runs it.

    python bench/startup.py [-n 10] [--tickets 200] [--repo DIR ...]

Times `maildesk --help`, `maildesk tickets list` on a desk of about 200 tickets (the
bench corpus, ingested once with `maildesk ingest --maildir`) and `maildesk ingest -`
(the MTA pipe, one corpus message on stdin), with `python -c pass` as the floor. With
several --repo (checkouts to run maildesk from, default this one) their runs are
interleaved, since this machine's speed drifts. Prints p50, p90 and max wall time and
the peak RSS of each command.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import generate

ROOT = Path(__file__).resolve().parent.parent

# Starts each job and waits for it with nothing loaded but os, sys, time and json: a
# child's peak RSS (wait4) counts the memory of the process that spawned it.
LAUNCHER = """
import json, os, sys, time
log = sys.argv[1]
for label, argv, repo, stdin in json.load(sys.stdin):
    env = dict(os.environ, PYTHONPATH=repo) if repo else dict(os.environ)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, stdin, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
    ]
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps([label, repo, wall, usage.ru_maxrss / 1024, code]), flush=True)
"""


def make_desk(work: Path, repo: Path, tickets: int) -> tuple[Path, Path, int]:
    """A desk made by `maildesk init` holding about `tickets` tickets; (its config, one
    message for the pipe, the number of tickets)."""

    def maildesk(*args: str) -> str:
        env = dict(os.environ, PYTHONPATH=str(repo))
        command = [sys.executable, "-P", "-m", "maildesk", *args]
        return subprocess.run(command, env=env, cwd=work, capture_output=True, check=True).stdout

    maildesk("init", str(work / "desk"))
    config = work / "desk" / "maildesk.yaml"
    box = work / "Maildir"
    for folder in ("cur", "new", "tmp"):
        (box / folder).mkdir(parents=True)
    # About 30% of the corpus are replies to earlier requests.
    messages = list(generate(max(1, round(tickets / 0.7))))
    for i, raw in enumerate(messages if tickets else []):
        (box / "new" / f"{1_700_000_000 + i}.M{i}P1.bench").write_bytes(raw)
    maildesk("--config", str(config), "ingest", "--maildir", str(box))
    listed = json.loads(maildesk("--config", str(config), "tickets", "list", "--json"))
    piped = work / "piped.eml"
    piped.write_bytes(messages[0])
    return config, piped, len(listed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10, help="runs of each command")
    parser.add_argument(
        "--tickets", type=int, default=200, help="about this many tickets (0: a new desk)"
    )
    parser.add_argument(
        "--repo", type=Path, action="append", help="checkout to run maildesk from (repeatable)"
    )
    args = parser.parse_args()
    repos = [repo.resolve() for repo in args.repo or [ROOT]]
    for repo in repos:
        # An installed maildesk has its .pyc files; without them (PYTHONDONTWRITEBYTECODE)
        # every run would compile the modules it imports.
        compileall.compile_dir(repo / "maildesk", quiet=1)
    work = Path(tempfile.mkdtemp(prefix="maildesk-bench-startup-"))
    try:
        config, piped, tickets = make_desk(work, repos[0], args.tickets)
        head = [sys.executable, "-P", "-m", "maildesk", "--config", str(config)]
        commands = {
            "maildesk --help": ([*head, "--help"], os.devnull),
            "maildesk tickets list": ([*head, "tickets", "list"], os.devnull),
            "maildesk ingest -": ([*head, "ingest", "-"], str(piped)),
        }
        jobs = []
        for _ in range(args.runs):
            jobs.append(("python -c pass", [sys.executable, "-c", "pass"], "", os.devnull))
            for repo in repos:
                for label, (argv, stdin) in commands.items():
                    jobs.append((label, argv, str(repo), stdin))
        log = work / "stderr.log"
        out = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(log)],
            input=json.dumps(jobs),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        errors = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report([json.loads(line) for line in out.splitlines()], tickets, args.runs, errors)


def report(rows: list[list], tickets: int, runs: int, errors: str) -> None:
    made = "bench corpus, `maildesk ingest --maildir`" if tickets else "`maildesk init` only"
    print(f"desk      {tickets} tickets on SQLite ({made})")
    print(f"runs      {runs} of each command, interleaved")
    print(f"{'command':24}{'checkout':28}{'p50 ms':>8}{'p90 ms':>8}{'max ms':>8}{'RSS MB':>8}")
    groups: dict[tuple[str, str], list[list]] = {}
    for row in rows:
        groups.setdefault((row[0], row[1]), []).append(row)
    for (label, repo), found in groups.items():
        walls = sorted(r[2] * 1000 for r in found)
        p90 = statistics.quantiles(walls, n=10, method="inclusive")[-1] if walls[1:] else walls[0]
        failed = sum(1 for r in found if r[4] != 0)
        note = f"  ({failed} failed)" if failed else ""
        print(
            f"{label:24}{Path(repo).name or '-':28}{statistics.median(walls):8.0f}{p90:8.0f}"
            f"{walls[-1]:8.0f}{max(r[3] for r in found):8.1f}{note}"
        )
    if errors:
        print(f"stderr (last lines):\n{errors}")


if __name__ == "__main__":
    main()
