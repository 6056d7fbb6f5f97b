"""Peak memory while ingesting a message with one big attachment.

    python bench/memory.py                 # 50 MB attachment, read from a file (process_file)
    python bench/memory.py --mode bytes    # the same message handed over as bytes (process_one)
    python bench/memory.py --mode oversized --size-mb 50   # over max_message_bytes

The message is written to a temporary folder, then a fresh Python process builds a
desk on SQLite there, ingests one small message (so imports and the parser child
are warm), records its peak RSS (ru_maxrss) as the baseline, ingests the big message
and records the peak again. The parser child's peak is reported too. The target is a
peak below 3x the attachment size.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
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
    from maildesk.common.config import load_config
    from maildesk.intake.parser_children import shared_sandbox
    from maildesk.service.desk import Desk
    from maildesk.store.db import make_engine, upgrade
    from maildesk.store.models import Attachment

    work = Path(args.dir)
    limit = args.size_mb * MB
    message_limit = limit * 2 if args.mode != "oversized" else limit // 2
    (work / "rules.yaml").write_text((ROOT / "rules.yaml").read_text())
    (work / "maildesk.yaml").write_text(
        f"database: {{url: 'sqlite:///{work}/md.db'}}\nstorage: {{path: {work}/data}}\n"
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
    shared_sandbox().close()  # reap the parser child, so its peak shows in RUSAGE_CHILDREN
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "outcome": result.outcome,
                "reason": result.reason,
                "attachments_stored": stored,
                "seconds": round(elapsed, 2),
                "baseline_rss": baseline,
                "peak_rss": peak,
                "parser_child_peak_rss": worker_peak,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--mode", choices=["file", "bytes", "oversized"], default="file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--message", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="maildesk-bench-") as tmp:
        message = Path(tmp) / "big.eml"
        expected = write_message(message, args.size_mb * MB)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--dir",
                tmp,
                "--message",
                str(message),
                "--mode",
                args.mode,
                "--size-mb",
                str(args.size_mb),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            return 1
        data = json.loads(out.stdout.strip().splitlines()[-1])
        size = args.size_mb * MB
        raw_size = message.stat().st_size
    peak, base = data["peak_rss"], data["baseline_rss"]
    print(f"mode {args.mode}: {args.size_mb} MB attachment, message {raw_size / MB:.1f} MB on disk")
    stored = data["attachments_stored"]
    intact = stored == [[size, expected]]
    print(f"outcome {data['outcome']} {data['reason']}; attachment stored intact: {intact}")
    print(f"ingest time {data['seconds']} s")
    print(
        f"peak RSS {peak / MB:.1f} MB = {peak / size:.2f}x the attachment "
        f"(baseline before ingest {base / MB:.1f} MB, growth {(peak - base) / MB:.1f} MB)"
    )
    print(f"parser child peak RSS {data['parser_child_peak_rss'] / MB:.1f} MB")
    ok = peak < 3 * size and (intact or args.mode == "oversized")
    print("target peak < 3x attachment size:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
