"""The one place where real objects are built from the config and wired together."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from maildesk import metrics
from maildesk.config import Config
from maildesk.errors import RulesError
from maildesk.kb import KnowledgeBase
from maildesk.outbox import Outbox
from maildesk.pipeline import Clock, Pipeline, utcnow
from maildesk.render import Renderer
from maildesk.rules import RuleSet, load_rules
from maildesk.store.blobs import BlobStore
from maildesk.store.db import make_engine, make_sessionmaker, require_current_schema

log = logging.getLogger(__name__)


@dataclass
class RulesHolder:
    """The rules in force; reload() swaps them only when the new file is valid."""

    path: Path
    current: RuleSet
    mtime: float = field(default=0.0)

    @classmethod
    def load(cls, path: Path) -> RulesHolder:
        return cls(path, load_rules(path), _mtime(path))

    def __call__(self) -> RuleSet:
        return self.current

    def reload_if_changed(self) -> bool:
        """Reload when the file changed; on error log it and keep the last good rules."""
        mtime = _mtime(self.path)
        if mtime == self.mtime:
            return False
        self.mtime = mtime
        try:
            self.current = load_rules(self.path)
        except RulesError as exc:
            log.error("rules not reloaded, keeping the last good rules: %s", exc)
            return False
        log.info("rules reloaded from %s", self.path)
        return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


@dataclass
class Desk:
    """A configured maildesk: database, blob store, rules, templates and the pipeline."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    rules: RulesHolder
    renderer: Renderer
    outbox: Outbox
    pipeline: Pipeline
    knowledge_base: KnowledgeBase | None = None

    @classmethod
    def build(cls, config: Config, *, clock: Clock = utcnow, check_schema: bool = True) -> Desk:
        """Wire a Desk; with check_schema, refuse an out-of-date database."""
        engine = make_engine(config.database_url())
        if check_schema:
            require_current_schema(engine)
        sessions = make_sessionmaker(engine)
        blobs = BlobStore(config.storage.path)
        rules = RulesHolder.load(config.rules)
        renderer = Renderer(config.templates, default_language=rules.current.default_language)
        outbox = Outbox(config, renderer)
        kb = KnowledgeBase(config.knowledge_base) if config.knowledge_base else None
        pipeline = Pipeline(
            config,
            sessions,
            blobs,
            rules,
            outbox,
            clock=clock,
            knowledge_base=kb,
            on_batch=metrics.observe_batch,
        )
        return cls(config, engine, sessions, blobs, rules, renderer, outbox, pipeline, kb)

    def close(self) -> None:
        self.engine.dispose()
