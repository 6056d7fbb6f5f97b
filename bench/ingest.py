"""Ingest N generated messages on SQLite; print messages/s, latency per batch and peak RSS.

    python bench/ingest.py [N] [--batch 200] [--history H]

Run it twice with different N to see that memory stays flat in N. --history H first
ingests H other messages (untimed), as a desk that has run for a while holds them:
a batch must not get slower as the tables grow.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import generate
from bench.desks import bench_desk
from maildesk.service.desk import settle_heap
from maildesk.service.ingest_results import SourceInfo
from maildesk.triage import language


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def history(n: int, batch: int) -> Iterator[list[tuple[bytes, SourceInfo]]]:
    """`n` messages of another seed (other Message-IDs), in batches."""
    raws = generate(n, seed=2)
    while chunk := [(raw, SourceInfo(source="history")) for raw in itertools.islice(raws, batch)]:
        yield chunk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=5000)
    parser.add_argument("--batch", type=int, default=200)  # a mailbox's default batch_size
    parser.add_argument("--dir", help="work folder (default: a temp dir, removed afterwards)")
    parser.add_argument("--history", type=int, default=0, help="messages stored beforehand")
    args = parser.parse_args()

    work = Path(args.dir or tempfile.mkdtemp(prefix="maildesk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    desk = bench_desk(work)
    desk.pipeline.reader.start()  # as the daemon does at start-up ...
    language.prepare()
    if args.history:
        for _ in desk.pipeline.process_batches(history(args.history, args.batch)):
            pass

    messages = list(generate(args.n))
    total_bytes = sum(len(m) for m in messages)
    settle_heap()  # ... and this once it has started
    rss_before = peak_rss_mb()
    batch_latency = []
    outcomes: dict[str, int] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    batches = (
        [(raw, SourceInfo(source="bench")) for raw in messages[i : i + args.batch]]
        for i in range(0, len(messages), args.batch)
    )
    t0 = started
    # As the IMAP source does: the next batch is read while the current one is written.
    for results in desk.pipeline.process_batches(batches):
        for result in results:
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        batch_latency.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    desk.close()

    per_msg = sorted(b / args.batch * 1000 for b in batch_latency)
    q = statistics.quantiles(per_msg, n=100) if len(per_msg) > 1 else per_msg * 99
    print(f"messages        {args.n} ({total_bytes / 1e6:.1f} MB, batch {args.batch})")
    if args.history:
        print(f"history         {args.history} messages stored before")
    print(f"outcomes        {outcomes}")
    print(f"throughput      {args.n / elapsed:.0f} messages/s ({elapsed:.2f} s wall)")
    print(
        f"CPU-bound rate  {args.n / cpu:.0f} messages/s ({cpu:.2f} s CPU; what an idle machine reaches)"
    )
    print(
        f"per message     p50 {q[49]:.2f} ms  p90 {q[89]:.2f} ms  p99 {q[98]:.2f} ms (batch time / batch size)"
    )
    print(
        f"peak RSS        {peak_rss_mb():.0f} MB (before ingest, with the corpus in memory: {rss_before:.0f} MB)"
    )
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
