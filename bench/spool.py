"""N `maildesk ingest -` processes, as an MTA pipe runs them, then the daemon's drain.

    python bench/spool.py [N] [--repo DIR] [--script PATH] [--parallel P]

Each call is a real process (`python -P -m maildesk`, maildesk from --repo, default
this checkout; or the installed console script with --script) fed one message of the
bench corpus (bench/corpus.py) on stdin. Prints each call's wall time (p50/p99), CPU
time (steadier than wall on a busy machine) and peak RSS, then drains the spool in-process as the daemon's spool worker does and
prints the drain rate. Against a checkout whose `ingest -` still ingests at once
(--repo), the spool stays empty and the calls' cost is the whole story.

The calls are started by a launcher that loads nothing but os, sys, time and json (see
LAUNCHER), so each call's peak RSS is its own.
"""

from __future__ import annotations

import argparse
import compileall
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# Runs the calls, `parallel` at a time, with nothing loaded but os, sys and time: a
# child's peak RSS (wait4) counts the memory of the process that spawned it.
LAUNCHER = """
import json, os, sys, time
repo, log, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3])
commands = json.loads(sys.argv[4])
env = dict(os.environ, PYTHONPATH=repo)
running = {}
def spawn(kind, message):
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, message, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
    ]
    argv = commands[int(kind)]
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    running[pid] = (kind, time.perf_counter())
pending = [line.split(" ", 1) for line in reversed(sys.stdin.read().splitlines())]
while pending or running:
    while pending and len(running) < parallel:
        spawn(*pending.pop())
    pid, status, usage = os.wait4(-1, 0)
    kind, started = running.pop(pid)
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    print(kind, wall, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))
"""


def drain(desk_dir: Path) -> tuple[int, float, float]:
    """Drain the spool as the daemon's worker does: (messages, seconds until the last
    commit, seconds to delete the files from cur/ afterwards, as the idle daemon does)."""
    from maildesk.common.config_file import load_config
    from maildesk.service.desk import Desk, settle_heap
    from maildesk.service.spool_ingest import SpoolIngest

    desk = Desk.build(load_config(desk_dir / "maildesk.yaml"))
    try:
        desk.pipeline.reader.start()
        settle_heap()
        worker = SpoolIngest(desk, desk.config.spool_source)
        worker.open()
        started, done = time.perf_counter(), 0
        while count := worker.sync():
            done += count
        committed = time.perf_counter()
        worker.close()
        return done, committed - started, time.perf_counter() - committed
    finally:
        desk.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=1000)
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout to run maildesk from")
    parser.add_argument("--script", help="run this console script instead of python -m")
    parser.add_argument("--parallel", type=int, default=1, help="calls at a time (a burst)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.corpus import generate
    from bench.desks import bench_desk
    from maildesk.service.spool_ingest import waiting_messages

    # An installed maildesk has its .pyc files; without them (PYTHONDONTWRITEBYTECODE)
    # every call would compile the modules it imports.
    compileall.compile_dir(args.repo / "maildesk", quiet=1)
    work = Path(tempfile.mkdtemp(prefix="maildesk-bench-spool-"))
    try:
        bench_desk(work).close()
        head = [args.script] if args.script else [sys.executable, "-P", "-m", "maildesk"]
        messages = []
        for i, raw in enumerate(generate(args.n)):
            messages.append(work / f"{i}.eml")
            messages[-1].write_bytes(raw)
        log = work / "stderr.log"
        commands = [
            [*head, "--config", str(work / "maildesk.yaml"), "ingest", "-"],
            [sys.executable, "-P", "-c", "pass"],  # the floor: Python starting and exiting
        ]
        # Every tenth call is the floor, interleaved: this machine's speed drifts.
        jobs = [f"0 {m}" if i % 10 else f"1 {m}\n0 {m}" for i, m in enumerate(messages)]
        launcher = [sys.executable, "-c", LAUNCHER, str(args.repo.resolve()), str(log)]
        launcher += [str(args.parallel), json.dumps(commands)]
        out = subprocess.run(
            launcher, input="\n".join(jobs), capture_output=True, text=True, check=True
        ).stdout
        rows = [line.split() for line in out.splitlines()]
        calls = [(float(w), float(r), int(c), float(u)) for k, w, u, r, c in rows if k == "0"]
        floor = [float(w) for k, w, *_ in rows if k == "1"]
        sizes = [m.stat().st_size for m in messages]
        spooled = len(waiting_messages(work / "spool"))
        drained = drain(work) if spooled else (0, 0.0, 0.0)
        errors = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, calls, floor, sizes, (spooled, *drained), errors)


def report(args, calls, floor, sizes, drained, errors) -> None:
    walls = sorted(c[0] * 1000 for c in calls)
    rss = sorted(c[1] for c in calls)
    codes = {code: sum(1 for c in calls if c[2] == code) for code in {c[2] for c in calls}}
    q = statistics.quantiles(walls, n=100) if len(walls) > 1 else walls * 99
    spooled, done, seconds, deleting = drained
    print(
        f"calls           {args.n} x `maildesk ingest -` from {args.repo}, {args.parallel} at a time"
    )
    print(
        f"messages        mean {statistics.mean(sizes) / 1024:.1f} KB, median {statistics.median(sizes) / 1024:.1f} KB (bench corpus)"
    )
    print(f"exit codes      {codes}")
    print(
        f"wall per call   p50 {q[49]:.1f} ms  p90 {q[89]:.1f} ms  p99 {q[98]:.1f} ms  max {walls[-1]:.1f} ms"
    )
    cpu = sorted(c[3] * 1000 for c in calls)
    print(
        f"CPU per call    p50 {statistics.median(cpu):.1f} ms  max {cpu[-1]:.1f} ms (user + system)"
    )
    print(f"peak RSS        p50 {statistics.median(rss):.1f} MB  max {rss[-1]:.1f} MB per process")
    print(
        f"python -c pass  p50 {statistics.median(floor) * 1000:.1f} ms (the floor, {len(floor)} calls interleaved)"
    )
    if spooled:
        print(
            f"drain           {done} of {spooled} spooled messages in {seconds:.2f} s ({done / seconds:.0f} messages/s)"
        )
        print(f"cur/ emptied    in {deleting:.2f} s afterwards (the idle daemon's job)")
    else:
        print("drain           nothing spooled (this maildesk ingests `-` at once)")
    print(f"bench RSS       {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if errors:
        print(f"stderr (last lines):\n{errors}")


if __name__ == "__main__":
    main()
