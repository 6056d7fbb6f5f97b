"""A throwaway desk for the benchmarks: config and rules written, schema migrated."""

from __future__ import annotations

from pathlib import Path

from maildesk.common.config_file import load_config
from maildesk.common.resources import example_rules
from maildesk.service.desk import Desk
from maildesk.store.db import make_engine, upgrade

SQLITE = "database: {url: 'sqlite:///bench.db'}\nstorage: {path: data}\n"


def bench_desk(work: Path, config_yaml: str = SQLITE, rules_yaml: str | None = None) -> Desk:
    """A Desk in `work` with `config_yaml` as maildesk.yaml and the example rules (or
    `rules_yaml`), its database migrated as `maildesk db upgrade` would."""
    rules = rules_yaml if rules_yaml is not None else example_rules().read_text()
    (work / "rules.yaml").write_text(rules)
    (work / "maildesk.yaml").write_text(config_yaml)
    config = load_config(work / "maildesk.yaml")
    engine = make_engine(config.database_url())
    upgrade(engine)
    engine.dispose()
    return Desk.build(config)
