"""Peak memory while ingesting a message with one big attachment.

    python bench/memory.py                 # 50 MB attachment, read from a file (process_file)
    python bench/memory.py --mode bytes    # the same message handed over as bytes (process_one)
    python bench/memory.py --mode oversized --size-mb 50   # over max_message_bytes
    python bench/memory.py --postgres      # on a throwaway PostgreSQL (storage.backend:
                                           # database): the blobs go into blob_chunks
    python bench/memory.py --postgres URL  # on an empty PostgreSQL database you name

The message is written to a temporary folder, then a fresh Python process builds a
desk there (on SQLite, or PostgreSQL), ingests one small message (so imports and the
parser child are warm), records its peak RSS (ru_maxrss) as the baseline, ingests the
big message and records the peak again. It then streams the attachment back from the
store and reports that read's own peak growth (Linux: the peak is reset first). The
parser child's peak is reported too. The target is a peak below 3x the attachment size.
--postgres without a URL needs the PostgreSQL server binaries and the test extras.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def write_message(path: Path, size: int, seed: int = 1) -> str:
    """A Gmail-style message with `size` bytes of random (incompressible) attachment;
    returns the attachment's SHA-256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        fh.write(
            b"From: Big Sender <big@example.org>\r\nTo: support@example.com\r\n"
            b"Subject: Log files attached\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
            b"Message-ID: <big-attachment-1@example.org>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="000000000000big"\r\n\r\n'
            b"--000000000000big\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
            b"Hello, the logs you asked for are attached.\r\n\r\n"
            b'--000000000000big\r\nContent-Type: application/octet-stream; name="logs.bin"\r\n'
            b'Content-Disposition: attachment; filename="logs.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        left = size
        while left:
            n = min(left, 57 * 20000)  # whole base64 lines
            block = rng.randbytes(n)
            digest.update(block)
            encoded = base64.encodebytes(block).replace(b"\n", b"\r\n")
            fh.write(encoded)
            left -= n
        fh.write(b"--000000000000big--\r\n")
    return digest.hexdigest()


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from maildesk.common.config_file import load_config
    from maildesk.intake.parser_children import shared_sandbox
    from maildesk.service.desk import Desk
    from maildesk.store.db import make_engine, upgrade
    from maildesk.store.models import Attachment

    work = Path(args.dir)
    limit = args.size_mb * MB
    message_limit = limit * 2 if args.mode != "oversized" else limit // 2
    url = args.database_url or f"sqlite:///{work}/md.db"
    (work / "rules.yaml").write_text((ROOT / "rules.yaml").read_text())
    (work / "maildesk.yaml").write_text(
        f"database: {{url: '{url}'}}\nstorage: {{path: {work}/data}}\n"
        f"rules: rules.yaml\nlimits:\n  max_message_bytes: {message_limit}\n"
        f"  max_attachment_bytes: {limit * 2}\n"
    )
    config = load_config(work / "maildesk.yaml")
    engine = make_engine(config.database_url())
    upgrade(engine)
    engine.dispose()
    desk = Desk.build(config)
    desk.pipeline.process_one(
        b"From: warm@example.org\r\nSubject: warm up\r\nMessage-ID: <warm@x>\r\n\r\nhello\r\n"
    )
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    if args.mode == "bytes":
        raw = Path(args.message).read_bytes()
        result = desk.pipeline.process_one(raw)
        del raw
    else:
        result = desk.pipeline.process_file(Path(args.message))
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with desk.sessions() as session:
        stored = [(a.size, a.sha256) for a in session.query(Attachment)]
    read = _read_back(desk, stored[0][1]) if stored else None
    shared_sandbox().close()  # reap the parser child, so its peak shows in RUSAGE_CHILDREN
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "outcome": result.outcome,
                "reason": result.reason,
                "backend": config.storage.backend_for(config.database.url),
                "attachments_stored": stored,
                "seconds": round(elapsed, 2),
                "baseline_rss": baseline,
                "peak_rss": peak,
                "read_back": read,
                "parser_child_peak_rss": worker_peak,
            }
        )
    )


def _read_back(desk, sha256: str) -> dict | None:
    """Stream a blob back from the store: seconds, SHA-256 and the read's own peak growth."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to now (Linux)
    except OSError:
        return None
    baseline = _proc_status("VmRSS")
    started = time.perf_counter()
    digest = hashlib.sha256()
    with desk.blobs.open(sha256) as fh:
        while block := fh.read(MB):
            digest.update(block)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "intact": digest.hexdigest() == sha256,
        "growth": _proc_status("VmHWM") - baseline,
    }


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A private PostgreSQL cluster on a free port (bench/pgserver.py); its URL."""
    sys.path.insert(0, str(ROOT))
    from bench.pgserver import throwaway_postgres as cluster

    with cluster() as server:
        yield server.create_database("bench_memory")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--mode", choices=["file", "bytes", "oversized"], default="file")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="throwaway",
        metavar="URL",
        help="run on PostgreSQL: an empty database's URL, or none for a throwaway cluster",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--message", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    if args.postgres == "throwaway":
        with throwaway_postgres() as url:
            return run(args, url)
    return run(args, args.postgres)


def run(args: argparse.Namespace, database_url: str | None) -> int:
    """Write the message, ingest it in a fresh process, print what it cost."""
    with tempfile.TemporaryDirectory(prefix="maildesk-bench-") as tmp:
        message = Path(tmp) / "big.eml"
        expected = write_message(message, args.size_mb * MB)
        command = [sys.executable, __file__, "--child", "--dir", tmp, "--message", str(message)]
        command += ["--mode", args.mode, "--size-mb", str(args.size_mb)]
        if database_url:
            command += ["--database-url", database_url]
        out = subprocess.run(command, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            return 1
        data = json.loads(out.stdout.strip().splitlines()[-1])
        size = args.size_mb * MB
        raw_size = message.stat().st_size
    peak, base = data["peak_rss"], data["baseline_rss"]
    where = "PostgreSQL" if database_url else "SQLite"
    print(
        f"mode {args.mode} on {where} (big blobs: {data['backend']}): {args.size_mb} MB "
        f"attachment, message {raw_size / MB:.1f} MB on disk"
    )
    stored = data["attachments_stored"]
    intact = stored == [[size, expected]]
    print(f"outcome {data['outcome']} {data['reason']}; attachment stored intact: {intact}")
    print(f"ingest time {data['seconds']} s")
    print(
        f"peak RSS {peak / MB:.1f} MB = {peak / size:.2f}x the attachment "
        f"(baseline before ingest {base / MB:.1f} MB, growth {(peak - base) / MB:.1f} MB)"
    )
    read = data["read_back"]
    if read:
        print(
            f"read back as a stream in {read['seconds']} s, intact: {read['intact']}, "
            f"peak RSS growth while reading {read['growth'] / MB:.1f} MB"
        )
    print(f"parser child peak RSS {data['parser_child_peak_rss'] / MB:.1f} MB")
    ok = peak < 3 * size and (intact or args.mode == "oversized")
    print("target peak < 3x attachment size:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
