"""The one place where real objects are built from the config and wired together."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from maildesk.common import metrics
from maildesk.common.config import Config
from maildesk.common.errors import Problem, RulesError
from maildesk.rules import RuleSet, load_rules
from maildesk.service.checks import rules_cross_problems
from maildesk.service.ingest_results import IngestResult
from maildesk.service.knowledge_base import KnowledgeBase
from maildesk.service.pipeline import Clock, Pipeline, utcnow
from maildesk.store.blobs import BlobStore, build_blob_store
from maildesk.store.checkpoint import WalCheckpointer
from maildesk.store.db import (
    make_engine,
    make_read_sessionmaker,
    make_sessionmaker,
    require_current_schema,
)

if TYPE_CHECKING:
    from maildesk.outgoing.templates import Renderer

log = logging.getLogger(__name__)


@dataclass
class RulesHolder:
    """The rules in force; reload() swaps them only when the new file is valid."""

    path: Path
    current: RuleSet
    signature: tuple[int, ...] = field(default=())  # the file as last read (mtime, size, inode)
    last_error: str | None = None  # why the newest file was rejected, until a good one loads
    # What a new file must also agree with (templates, mailboxes' queues), as `maildesk
    # check` asks: a reload that names a template nobody wrote is refused like a typo.
    cross_check: Callable[[RuleSet], list[Problem]] | None = None

    @classmethod
    def load(cls, path: Path) -> RulesHolder:
        return cls(path, load_rules(path), _signature(path))

    def __call__(self) -> RuleSet:
        return self.current

    def reload_if_changed(self) -> bool:
        """Reload when the file changed; on error log it and keep the last good rules."""
        signature = _signature(self.path)
        if signature == self.signature:
            return False
        self.signature = signature
        try:
            rules = load_rules(self.path)
            problems = self.cross_check(rules) if self.cross_check is not None else []
            if problems:
                raise RulesError(str(self.path), problems)
        except RulesError as exc:
            self.last_error = str(exc)
            log.error("rules not reloaded, keeping the last good rules: %s", exc)
            return False
        self.current, self.last_error = rules, None
        log.info("rules reloaded from %s: %d rules", self.path, len(rules.rules))
        return True


def settle_heap() -> None:
    """Tune the garbage collector for a long ingest run; call once start-up is done.

    What start-up made (config, rules, SQLAlchemy mappers and caches) lives as long as
    the process, so it is frozen out of the collector's scans; and the youngest
    generation is collected less often, as ingest makes many short-lived objects. With
    the defaults, bench/ingest.py spent about a quarter of its time in the collector.
    """
    if gc.get_threshold()[0] >= 20_000:
        return  # settled before (a process that runs the daemon more than once)
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _signature(path: Path) -> tuple[int, ...]:
    """mtime, size and inode: an editor's save changes at least one of them."""
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class Desk:
    """A configured maildesk: database, blob store, rules, templates and the pipeline."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]  # for work that writes
    blobs: BlobStore
    rules: RulesHolder
    pipeline: Pipeline
    knowledge_base: KnowledgeBase | None = None
    readers: sessionmaker[Session] | None = None  # read-only: never waits for a writer
    checkpointer: WalCheckpointer | None = None  # SQLite: copies the WAL over in the background
    # Called (in the ingest thread) after a batch that queued notifications commits: the
    # daemon's sender puts its wake-up here, so mail leaves without waiting for a poll.
    outbox_waiters: list[Callable[[], None]] = field(default_factory=list)

    @cached_property
    def renderer(self) -> Renderer:
        """Templates rendered in this process (`outbox show`, the demo). Made on first use:
        a daemon renders in its render child, so its own process never imports Jinja."""
        from maildesk.outgoing.templates import Renderer

        language = self.rules.current.default_language
        return Renderer(self.config.templates, default_language=language)

    def read_session(self) -> Session:
        """A session for reading only (listing, showing, reports)."""
        return (self.readers or self.sessions)()

    @classmethod
    def build(cls, config: Config, *, clock: Clock = utcnow, check_schema: bool = True) -> Desk:
        """Wire a Desk; with check_schema, refuse an out-of-date database."""
        engine = make_engine(config.database_url())
        if check_schema:
            require_current_schema(engine)
        sessions = make_sessionmaker(engine)
        readers = make_read_sessionmaker(engine)
        blobs = build_blob_store(config.storage, engine, readers)
        rules = RulesHolder.load(config.rules)
        kb = KnowledgeBase(config.knowledge_base) if config.knowledge_base else None
        checkpointer = WalCheckpointer(engine) if engine.dialect.name == "sqlite" else None
        outbox_waiters: list[Callable[[], None]] = []

        def committed(results: Sequence[IngestResult], seconds: float) -> None:
            metrics.observe_batch(results, seconds)
            if checkpointer is not None:
                checkpointer.nudge()
            if any(r.notifications for r in results):
                for wake in list(outbox_waiters):
                    with contextlib.suppress(RuntimeError):  # its event loop is closing
                        wake()

        pipeline = Pipeline(
            config,
            sessions,
            blobs,
            rules,
            clock=clock,
            knowledge_base=kb,
            on_batch=committed,
        )
        desk = cls(config, engine, sessions, blobs, rules, pipeline, kb, readers)
        desk.outbox_waiters = outbox_waiters
        rules.cross_check = lambda new: rules_cross_problems(desk.config, new)
        if checkpointer is not None:
            checkpointer.start()
            desk.checkpointer = checkpointer
        return desk

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        self.blobs.close()
        self.engine.dispose()
