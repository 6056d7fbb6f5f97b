"""Commands load only what they use: an MTA or a shell runs `maildesk` once per call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_PROBE = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["maildesk", *sys.argv[2:]]
from maildesk.cli import main
main()
"""


def modules_loaded(tmp_path: Path, *args: str, stdin: bytes = b"") -> set[str]:
    """The modules a real `maildesk ARGS` process had imported when it exited."""
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args], capture_output=True, input=stdin
    )
    assert done.returncode == 0, done.stderr.decode()
    return set(json.loads(out.read_text()))


def test_help_imports_no_database_templates_or_pipeline(tmp_path):
    loaded = modules_loaded(tmp_path, "--help")
    heavy = {"sqlalchemy", "pydantic", "jinja2", "alembic", "imapclient", "aiosmtplib", "yaml"}
    assert loaded & heavy == set()
    ours = {m for m in loaded if m.startswith("maildesk.") and not m.startswith("maildesk.cli")}
    assert ours == {"maildesk.common", "maildesk.common.errors", "maildesk.common.redact"}


# SQLAlchemy alone takes most of the time `tickets list` may have: it reads without it,
# and without the config's pydantic models when maildesk.yaml's database is a plain URL.
LISTING_UNUSED = {
    "sqlalchemy",
    "pydantic",
    "alembic",
    "jinja2",
    "imapclient",
    "aiosmtplib",
    "mailparser",
    "nh3",
    "re2",
}


def test_listing_tickets_loads_no_sqlalchemy_pipeline_rules_templates_or_mail_servers(
    tmp_path, desk_dir
):
    loaded = modules_loaded(
        tmp_path, "--config", str(desk_dir / "maildesk.yaml"), "tickets", "list"
    )
    assert loaded & LISTING_UNUSED == set()
    stages = {m.split(".")[1] for m in loaded if m.startswith("maildesk.") and "." in m}
    assert stages <= {"cli", "common", "store"}, stages


@pytest.mark.postgres
def test_listing_tickets_on_postgresql_loads_no_sqlalchemy(tmp_path, postgres_url):
    from maildesk.store.db import make_engine, upgrade
    from tests.conftest import write_config

    config = write_config(tmp_path / "desk", database_url=postgres_url)
    engine = make_engine(postgres_url)
    upgrade(engine)
    engine.dispose()
    args = ("--config", str(config), "tickets", "list", "--json", "--status", "new")
    assert modules_loaded(tmp_path, *args) & LISTING_UNUSED == set()


def test_the_mta_pipe_loads_neither_click_nor_the_config_model_nor_the_pipeline(tmp_path):
    from tests.conftest import make_mail, write_config

    config = write_config(tmp_path / "desk")
    loaded = modules_loaded(tmp_path, "--config", str(config), "ingest", "-", stdin=make_mail())
    assert list((tmp_path / "desk" / "spool" / "new").iterdir()) != []
    heavy = {"click", "sqlalchemy", "pydantic", "yaml", "jinja2", "alembic", "email"}
    assert loaded & heavy == set()
    ours = {m for m in loaded if m.startswith("maildesk")}
    assert ours == {
        "maildesk",
        "maildesk.cli",
        "maildesk.cli.mta_pipe",
        "maildesk.common",
        "maildesk.common.config_location",
        "maildesk.intake",
        "maildesk.intake.spool",
    }


def test_ingesting_in_process_loads_no_template_engine(tmp_path, desk_dir):
    # The pipeline queues notifications; rendering them is the render child's job, so
    # the daemon's own process (like `ingest --now`) never imports Jinja (about 11 MB).
    from tests.conftest import make_mail

    args = ("--config", str(desk_dir / "maildesk.yaml"), "ingest", "--now", "-")
    loaded = modules_loaded(tmp_path, *args, stdin=make_mail(subject="Printer on fire"))
    assert "maildesk.service.pipeline" in loaded  # it did ingest here
    assert {"jinja2", "maildesk.outgoing.templates"} & loaded == set()
