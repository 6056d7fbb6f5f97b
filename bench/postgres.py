"""Ingest on PostgreSQL: one daemon, then N daemons side by side, each on its own Maildir.

    python bench/postgres.py [--messages 2000] [--daemons 1,2,4] [--runs 1] [--tcp]
        [--rules example|fixed|choice|choice-unlocked]

Starts its own PostgreSQL cluster (as the test suite does; see bench/pgserver.py),
reached over its Unix socket (`--tcp`: over loopback TCP). For each daemon count D it
makes a fresh database, writes D Maildirs of MESSAGES generated messages each (the
bench/corpus.py mix; replies thread by In-Reply-To only, as each Maildir's tickets are
numbered among the others'), starts D processes that each build a desk and ingest
one Maildir as `maildesk ingest --maildir` does, and lets them go at once.

Prints per run: messages/s of all daemons together (wall clock), CPU per message of
the daemons (each with its parser children) and of the PostgreSQL server, each
daemon's peak RSS summed over its processes, and how often a busy backend was
waiting for a lock (pg_stat_activity sampled every 20 ms, by wait event).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import generate
from bench.pgserver import Cluster, throwaway_postgres
from bench.procstat import TreeSampler

RUN_TIMEOUT = 1800


def fill_maildir(root: Path, n: int, seed: int) -> int:
    """n messages in root/new (token_share=0: see the module docstring); their size."""
    for folder in ("cur", "new", "tmp"):
        (root / folder).mkdir(parents=True)
    size = 0
    for i, raw in enumerate(generate(n, seed=seed, token_share=0)):
        (root / "new" / f"{1_700_000_000 + i}.M{i}P{seed}.bench").write_bytes(raw)
        size += len(raw)
    return size


def bench_rules(kind: str) -> str:
    """The example rules; "fixed": with its one assignment strategy (least_open, for the
    one-agent billing and russian queues) replaced by a named agent; "choice": least_open
    for the general queue too, where it chooses between alice and bob (which makes
    daemons take turns unless "-unlocked": daemon.assignment_lock: false)."""
    from maildesk.common.resources import example_rules

    rules = example_rules().read_text()
    if kind == "fixed":
        fixed = rules.replace("assignee: least_open", "assignee: carol")
        assert fixed != rules, "the example rules no longer use least_open"
        return fixed
    if kind.startswith("choice"):
        choice = rules.replace(
            "queue: {in: [billing, russian]}", "queue: {in: [billing, russian, general]}"
        )
        assert choice != rules, "the example rules no longer assign billing and russian"
        return choice
    return rules


def daemon(url: str, maildir: Path, source: str, rules: str) -> None:
    """Child: build a desk, say "ready", wait for "go", ingest the Maildir, print a JSON line."""
    from bench.desks import bench_desk
    from maildesk.intake.maildir import Maildir
    from maildesk.service.desk import settle_heap
    from maildesk.service.file_ingest import ingest_paths
    from maildesk.service.ingest_results import SourceInfo
    from maildesk.store import leases

    work = maildir.parent / f"{source}-desk"
    work.mkdir()
    config = f"database: {{url: '{url}'}}\nstorage: {{path: data}}\n"
    if rules.endswith("-unlocked"):
        config += "daemon: {assignment_lock: false}\n"
    desk = bench_desk(work, config, bench_rules(rules))
    desk.pipeline.reader.start()  # as the daemon does at start-up
    with desk.sessions.begin() as session:  # `maildesk run` beats: daemons count each other
        leases.beat(session, f"bench:{source}", 3600, mailboxes=1)
    settle_heap()
    box = Maildir(maildir)
    waiting = box.waiting()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    outcomes = Counter(
        result.outcome
        for _, result in ingest_paths(
            desk.pipeline, waiting, lambda _: SourceInfo(source=source), committed=box.mark_seen
        )
    )
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "outcomes": outcomes}), flush=True)
    # Stays until told: its CPU, and the server's, are read before it or its backends exit.
    sys.stdin.readline()
    desk.close()


class LockWaits(threading.Thread):
    """Samples what the database's busy client backends wait for."""

    def __init__(self, cluster: Cluster, database: str, interval: float = 0.02):
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(cluster.conninfo(database), autocommit=True)
        self.pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.interval = interval
        self.busy = 0  # backend samples running a statement
        self.waits: Counter[str] = Counter()  # of those, waiting: "Lock:transactionid", ...
        self._halt = threading.Event()

    def run(self) -> None:
        query = (
            "SELECT wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND state = 'active'"
        )
        while not self._halt.wait(self.interval):
            for kind, event in self.conn.execute(query):
                self.busy += 1
                if kind in ("Lock", "LWLock"):
                    self.waits[f"{kind}:{event}"] += 1

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.conn.close()


def run_once(cluster: Cluster, daemons: int, messages: int, name: str, rules: str) -> dict:
    """Ingest `messages` per daemon with `daemons` daemons at once; what it cost."""
    from bench.desks import bench_desk

    url = cluster.create_database(name)
    work = Path(tempfile.mkdtemp(prefix="maildesk-bench-pg-"))
    procs: list[subprocess.Popen] = []
    try:
        (work / "schema").mkdir()
        bench_desk(work / "schema", f"database: {{url: '{url}'}}\n").close()  # migrated once
        size = sum(fill_maildir(work / f"box{k}", messages, k + 1) for k in range(daemons))
        for k in range(daemons):
            box = str(work / f"box{k}")
            command = [sys.executable, __file__, "--daemon", url, box, f"box{k}", rules]
            procs.append(
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("a daemon did not start")
        waits = LockWaits(cluster, name)
        server = TreeSampler(cluster.postmaster_pid(), interval=0.2)
        # Sampled from here, not inside the daemons: reading /proc/PID/smaps_rollup for
        # PSS every 50 ms cost a daemon's main process a tenth of its time.
        samplers = [TreeSampler(proc.pid) for proc in procs]
        for sampler in [server, *samplers]:
            sampler.start()
        waits.start()
        started = time.perf_counter()
        load = os.getloadavg()[0]
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [json.loads(proc.stdout.readline()) for proc in procs]
        wall = time.perf_counter() - started
        for report, sampler in zip(reports, samplers, strict=True):
            report["cpu"] = sampler.stop()  # each stopped once its daemon has reported
            report.update(rss=sampler.peak_rss, pss=sampler.peak_pss)
            report["processes"] = sampler.processes
            ledger = sampler.ledger
            report["main_cpu"] = ledger.last[ledger.root] - ledger.first[ledger.root]
        waits.stop()
        server.stop()
        ledger = server.ledger
        ledger.last.pop(waits.pid, None)  # the sampler's own backend is not the daemons' cost
        for proc in procs:
            proc.stdin.write("bye\n")
            proc.stdin.flush()
            proc.wait(RUN_TIMEOUT)
        stored, assigned = _count(cluster, name), _assigned(cluster, name)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    total = daemons * messages
    outcomes: Counter[str] = Counter()
    for report in reports:
        outcomes.update(report["outcomes"])
    return {
        "daemons": daemons,
        "messages": total,
        "megabytes": size / 1e6,
        "wall": wall,
        "rate": total / wall,
        "daemon_cpu_ms": sum(r["cpu"] for r in reports) / total * 1000,
        "main_cpu_ms": sum(r["main_cpu"] for r in reports) / total * 1000,
        "server_cpu_ms": ledger.used() / total * 1000,
        "rss_mb": [r["rss"] / 2**20 for r in reports],
        "pss_mb": [r["pss"] / 2**20 for r in reports],
        "processes": max(r["processes"] for r in reports),
        "busy_samples": waits.busy,
        "waits": dict(waits.waits.most_common()),
        "outcomes": dict(outcomes),
        "stored": stored,
        "assigned": assigned,
        "load": load,
        "rules": rules,
    }


def _count(cluster: Cluster, database: str) -> int:
    import psycopg

    with psycopg.connect(cluster.conninfo(database)) as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0]


def _assigned(cluster: Cluster, database: str) -> dict[str, int]:
    """Open tickets per agent: how evenly least_open shared them out."""
    import psycopg

    with psycopg.connect(cluster.conninfo(database)) as conn:
        rows = conn.execute(
            "SELECT assignee, count(*) FROM tickets WHERE assignee IS NOT NULL "
            "GROUP BY assignee ORDER BY assignee"
        ).fetchall()
    return {agent.partition("@")[0]: count for agent, count in rows}


def show(result: dict) -> None:
    waited = sum(result["waits"].values())
    busy = max(result["busy_samples"], 1)
    waits = ", ".join(f"{k} {v}" for k, v in result["waits"].items()) or "none"
    cpu = result["daemon_cpu_ms"] + result["server_cpu_ms"]
    cores = os.cpu_count() or 1
    print(
        f"{result['daemons']} daemon(s), {result['rules']} rules: {result['messages']} messages "
        f"({result['megabytes']:.1f} MB) in {result['wall']:.2f} s = {result['rate']:.0f} msg/s "
        f"(load average {result['load']:.1f}); stored {result['stored']}, {result['outcomes']}\n"
        f"  CPU per message: daemons {result['daemon_cpu_ms']:.3f} ms "
        f"(main processes {result['main_cpu_ms']:.3f}, parser children "
        f"{result['daemon_cpu_ms'] - result['main_cpu_ms']:.3f}) + PostgreSQL "
        f"{result['server_cpu_ms']:.3f} ms = {cpu:.3f} ms; "
        f"{cores} busy cores would take {cores * 1000 / cpu:.0f} msg/s\n"
        f"  peak RSS per daemon ({result['processes']} processes): "
        f"{', '.join(f'{r:.0f}' for r in result['rss_mb'])} MiB "
        f"(PSS {', '.join(f'{r:.0f}' for r in result['pss_mb'])} MiB)\n"
        f"  lock waits: {waited} of {result['busy_samples']} busy-backend samples "
        f"({waited / busy:.0%}): {waits}\n"
        f"  open tickets per agent: {result['assigned']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="per daemon")
    parser.add_argument("--daemons", default="1,2,4", help="daemon counts to run, e.g. 1,2,4")
    parser.add_argument("--runs", type=int, default=1, help="runs per daemon count")
    parser.add_argument("--tcp", action="store_true", help="loopback TCP, not the Unix socket")
    parser.add_argument(
        "--rules",
        choices=["example", "fixed", "choice", "choice-unlocked"],
        default="example",
        help="fixed: the example rules without their least_open assignment; choice: "
        "least_open between two agents too (-unlocked: daemon.assignment_lock: false)",
    )
    parser.add_argument("--json", action="store_true", help="print each run as JSON too")
    parser.add_argument("--daemon", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.daemon:
        url, maildir, source, rules = args.daemon
        daemon(url, Path(maildir), source, rules)
        return
    with throwaway_postgres(tcp=args.tcp) as cluster:
        for run in range(args.runs):
            for count in [int(d) for d in args.daemons.split(",")]:
                name = f"bench_{count}_{run}"
                result = run_once(cluster, count, args.messages, name, args.rules)
                show(result)
                if args.json:
                    print(json.dumps(result))


if __name__ == "__main__":
    main()
