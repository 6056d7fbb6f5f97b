"""Threads of a mailing list reproduced as tickets: the list corpus through a desk.

    python bench/list_threads.py [MBOX_OR_FOLDER] [-v]

Reads tests/corpus/lists (every *.mbox there) or the mbox file or folder given. The desk's
support address is the list's posting address (its `List-Post`), so every post
arrives To/Cc the desk as list mail does. It runs twice: with the example rules (only
proven participants join a ticket) and with a `participants: list` queue. Prints, for
each, threads reproduced (each thread of the In-Reply-To/References graph exactly one
ticket of its own), replies on their thread's ticket (and on a ticket linked to it) and
tickets made; -v lists the replies that were not on their thread's ticket.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maildesk.common.config_file import load_config
from maildesk.common.resources import example_rules
from maildesk.service.desk import Desk
from maildesk.store.db import make_engine, upgrade
from tests.list_corpus import (
    CORPUS,
    LIST_RULES,
    Figures,
    ListMail,
    ingest,
    list_address,
    mbox_files,
    measure,
    read_corpus,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now().astimezone()

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now


def list_desk(work: Path, support: str, rules: str, clock: Clock) -> Desk:
    (work / "rules.yaml").write_text(rules)
    (work / "reply.key").write_text("0" * 64)
    (work / "maildesk.yaml").write_text(
        "database: {url: 'sqlite:///bench.db'}\nstorage: {path: data}\n"
        f"tickets: {{prefix: MD, support_address: '{support}', reply_secret: {{file: reply.key}}}}\n"
        "rules: rules.yaml\n"
    )
    config = load_config(work / "maildesk.yaml")
    engine = make_engine(config.database_url())
    upgrade(engine)
    engine.dispose()
    return Desk.build(config, clock=clock)


def run(mails: list[ListMail], support: str, rules: str) -> tuple[Figures, float]:
    work = Path(tempfile.mkdtemp(prefix="maildesk-lists-"))
    try:
        clock = Clock()
        desk = list_desk(work, support, rules, clock)
        started = time.perf_counter()
        outcomes = ingest(desk, mails, clock.set)
        took = time.perf_counter() - started
        figures = measure(desk, mails, outcomes)
        desk.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return figures, took


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "-v"]
    source = Path(args[0]) if args else CORPUS
    mails = read_corpus(mbox_files(source))
    support = list_address(mails)
    print(f"corpus  {len(mails)} messages from {source.name}, list address {support}")
    for name, rules in (
        ("example rules", example_rules().read_text()),
        ("participants: list", LIST_RULES),
    ):
        figures, took = run(mails, support, rules)
        print(f"{name}: {figures.summary()}")
        print(f"  outcomes {dict(figures.outcomes)}, {took:.1f} s")
        if "-v" in sys.argv:
            for line in figures.missed:
                print(f"  missed: {line}")


if __name__ == "__main__":
    main()
