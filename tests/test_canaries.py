"""Canary secrets: servers that quote the credentials back, and where the quotes must not go.

A real Dovecot refuses both logins with the password (or token) in its NO text, and the
SMTP sink refuses AUTH quoting the password and the base64 AUTH PLAIN string. No command
output, no text in the database and no parser or render child's environment may then
hold a canary.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maildesk.common.children import CHILD_ENVIRONMENT, child_environment
from maildesk.intake.parser_children import SandboxedParser
from tests.conftest import make_mail, write_config
from tests.daemon_helpers import maildesk
from tests.servers import SmtpSink

IMAP_PW = "canary-Imap-9f3Kq2"
SMTP_PW = "canary-Smtp-4xZ81w"
TOKEN = "canary-Tok-7Hn2pQvB"
SMTP_USER = "desk-sender"
PLAIN = base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PW}".encode()).decode()  # AUTH PLAIN
CANARIES = (IMAP_PW, SMTP_PW, TOKEN, PLAIN, base64.b64encode(SMTP_PW.encode()).decode())


def _assert_no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary!r} in {where}:\n{text}"


@pytest.fixture
def echoing_sink():
    sink = SmtpSink(users={SMTP_USER: "the-right-one"})

    def refuse(login: bytes, password: bytes) -> str:
        plain = base64.b64encode(b"\0" + login + b"\0" + password).decode()
        return f"535 5.7.8 no such login {login.decode()}/{password.decode()} (got {plain})"

    sink.refuse_auth = refuse
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def canary_desk(own_dovecot, echoing_sink, tmp_path):
    """A desk whose mailboxes and SMTP server all refuse it, quoting its secrets."""
    reason = "nologin reason=Refused:bad-password-{}"
    with_password = own_dovecot.add_user("pw", IMAP_PW)
    with_token = own_dovecot.add_user("tok", TOKEN)
    own_dovecot.set_password(with_password, IMAP_PW, reason.format(IMAP_PW))
    own_dovecot.set_password(with_token, TOKEN, reason.format(TOKEN))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    imap = f"host: 127.0.0.1\n    port: {own_dovecot.imap_port}\n    security: none\n"
    extra = f"""
mailboxes:
  - name: withpassword
    {imap}    username: {with_password}
    password: {{env: MD_CANARY_IMAP}}
  - name: withtoken
    {imap}    username: {with_token}
    oauth2_token: {{command: "cat {token_file}"}}
{echoing_sink.smtp_config()}  username: {SMTP_USER}
  password: {{env: MD_CANARY_SMTP}}
daemon:
  max_backoff_seconds: 1
"""
    config = write_config(tmp_path / "desk", extra=extra)
    assert maildesk(config, "db", "upgrade").returncode == 0
    mail = tmp_path / "request.eml"
    mail.write_bytes(make_mail(subject="Printer on fire"))
    assert maildesk(config, "ingest", str(mail)).returncode == 0
    return config


@pytest.fixture
def canary_env(monkeypatch):
    """The canaries in this process's environment, which `maildesk` children inherit."""
    monkeypatch.setenv("MD_CANARY_IMAP", IMAP_PW)
    monkeypatch.setenv("MD_CANARY_SMTP", SMTP_PW)


@pytest.mark.dovecot
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback only
def test_canary_secrets_reach_no_output_no_column_and_no_child(canary_desk, canary_env):
    outputs = {}
    commands = [
        ("run", "--once"),
        ("outbox", "send"),
        ("outbox", "retry", "1"),
        ("status",),
        ("status", "--json"),
        ("outbox", "list"),
        ("outbox", "list", "--json"),
        ("tickets", "list"),
        ("tickets", "show", "MD-1"),
        ("tickets", "show", "MD-1", "--json"),
    ]
    for args in commands:
        done = maildesk(canary_desk, *args)
        outputs[" ".join(args)] = done.stdout + done.stderr
    for command, text in outputs.items():
        _assert_no_canary(text, f"`maildesk {command}`")

    # The servers' answers did arrive, masked where they quoted a secret.
    once = outputs["run --once"]
    assert "withpassword: FAILED" in once and "Refused:bad-password-***" in once
    assert "withtoken: FAILED" in once
    assert f"no such login {SMTP_USER}/*** (got ***)" in outputs["outbox send"]
    assert "Refused:bad-password-***" in outputs["status"]
    assert "refused the login" in outputs["outbox list"]
    for entry in json.loads(outputs["outbox list --json"]):  # acknowledgement, notices
        assert f"no such login {SMTP_USER}/*** (got ***)" in entry["last_error"]

    _assert_no_canary(_database_text(canary_desk.parent / "maildesk.db"), "the database")
    _assert_no_canary(_daemon_children_environments(canary_desk), "a child's environment")


def _database_text(path: Path) -> str:
    """Every value of every column of every table, as text."""
    parts = []
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            try:
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            except sqlite3.OperationalError:  # a contentless FTS5 table: its shadow tables
                continue  # (search_index_data, ...) hold what it indexed, and are read here
            for row in rows:
                for value in row:
                    if isinstance(value, bytes):
                        value = value.decode("latin-1")
                    parts.append(str(value))
    assert any("no such login" in part for part in parts)  # the errors were stored
    return "\n".join(parts)


def _daemon_children_environments(config: Path) -> str:
    """Start `maildesk run`, read the environment of its parser and render children."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "maildesk", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        children = _wait_for_children(daemon.pid, ("intake.parser_children", "render_jobs"))
        environments = {handler: _environ(pid) for handler, pid in children.items()}
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    _assert_no_canary(out + err, "the daemon's log")
    for handler, env in environments.items():
        assert "PATH" in env and "PYTHONPATH" in env, handler
        unexpected = {k for k in env if k not in CHILD_ENVIRONMENT and not k.startswith("LC_")}
        assert unexpected <= {"PYTHONPATH"}, f"{handler} child sees {sorted(unexpected)}"
    return "\n".join(f"{k}={v}" for env in environments.values() for k, v in env.items())


def _wait_for_children(parent: int, handlers: tuple[str, ...]) -> dict[str, int]:
    """{handler: pid} of one `python -c` child per handler, once they are all running."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            for handler in handlers:
                if ppid == parent and handler in cmdline:
                    found[handler] = int(entry.name)
        if len(found) == len(handlers):
            return found
        time.sleep(0.1)
    pytest.fail(f"the daemon did not start children for {handlers}")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode().partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def test_a_parser_child_sees_only_what_it_needs(monkeypatch):
    monkeypatch.setenv("MAILDESK_IMAP_PASSWORD", IMAP_PW)
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    parser = SandboxedParser(max_idle=1)
    try:
        parser.prestart(1)
        env = _environ(parser.idle[0].process.pid)
        assert parser.parse_many([make_mail(subject="Fine")], _limits(), 30)[0].subject == "Fine"
    finally:
        parser.close()
    assert "MAILDESK_IMAP_PASSWORD" not in env and IMAP_PW not in "".join(env.values())
    assert env["LC_TIME"] == "C.UTF-8" and env["PATH"] == os.environ["PATH"]
    assert set(env) <= {*CHILD_ENVIRONMENT, "PYTHONPATH", "LC_TIME", *_lc(os.environ)}


def test_child_environment_keeps_locale_and_python_and_drops_the_rest():
    parent = {
        "PATH": "/usr/bin",
        "LANG": "de_DE.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "Europe/Berlin",
        "PYTHONPATH": "/opt/extra",
        "VIRTUAL_ENV": "/opt/venv",
        "HOME": "/root",
        "MAILDESK_SMTP_PASSWORD": SMTP_PW,
        "DATABASE_URL": f"postgresql://u:{IMAP_PW}@db/x",
    }
    env = child_environment(parent)
    assert set(env) == {"PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV"}
    package_root = str(Path(__file__).resolve().parent.parent)
    assert env["PYTHONPATH"].split(os.pathsep) == [package_root, "/opt/extra"]


def _limits():
    from maildesk.intake.message import ParseLimits

    return ParseLimits()


def _lc(environ: dict[str, str] | os._Environ[str]) -> set[str]:
    return {k for k in environ if k.startswith("LC_")}
