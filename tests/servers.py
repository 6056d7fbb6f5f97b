"""Real servers for tests, started on loopback by the suite: PostgreSQL (and others as added).

Under CI=true a server that cannot start is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must exercise every real server."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: real servers are required)")
    pytest.skip(reason)


def scratch_dir(prefix: str) -> Path:
    """A world-traversable folder on tmpfs when there is one (servers run as other users)."""
    base = os.environ.get("MAILDESK_TEST_ROOT") or (
        "/dev/shm" if os.path.isdir("/dev/shm") else None
    )
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return path


@dataclass
class PostgresServer:
    host: str
    port: int
    root: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _pg_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and pg_ctl refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on a private port, for the whole test session."""
    bindir = _pg_bin()
    if bindir is None:
        unavailable("PostgreSQL server binaries not installed (Debian package postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg not installed")
    root = scratch_dir("maildesk-pg-")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    data = root / "data"
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    started = subprocess.run(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "postgres.log"),
                "-w",
                "-o",
                options,
                "start",
            ]
        ),
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        log = (root / "postgres.log").read_text() if (root / "postgres.log").exists() else ""
        pytest.fail(f"PostgreSQL did not start: {started.stderr}\n{log[-2000:]}")
    try:
        yield PostgresServer("127.0.0.1", port, root)
    finally:
        subprocess.run(
            _as_postgres(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


_db_counter = iter(range(1, 10**6))


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return postgres.create_database(f"maildesk_{os.getpid()}_{next(_db_counter)}")


def wait_for_port(host: str, port: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


# --- SMTP: an aiosmtpd server on loopback that records what it receives -------------------


@dataclass
class Received:
    """One message as the SMTP server got it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def parsed(self):
        import email
        import email.policy

        return email.message_from_bytes(self.data, policy=email.policy.default)


class SmtpSink:
    """A real SMTP server (aiosmtpd Controller) that records messages.

    Tests script its answers: `refuse[address] = "550 5.1.1 ..."` refuses a recipient,
    `data_replies` holds answers given to the next DATA commands before "250".
    `on_message` is called with each Received (e.g. to deliver it to another desk).
    """

    def __init__(
        self,
        port: int | None = None,
        tls_context=None,
        users: dict | None = None,
        smtputf8: bool = True,
    ):
        import threading

        self.smtputf8 = smtputf8
        self.port = port or free_port()
        self.tls_context = tls_context
        self.users = users  # when set, AUTH LOGIN/PLAIN is required
        self.received: list[Received] = []
        self.refuse: dict[str, str] = {}
        self.data_replies: list[str] = []
        self.on_message = None
        self.sessions = 0
        self._cond = threading.Condition()
        self._controller = None

    # aiosmtpd handler hooks
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_replies:
            return self.data_replies.pop(0)
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()
        if self.on_message is not None:
            self.on_message(item)
        return "250 2.0.0 OK queued"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            return AuthResult(success=self.users.get(user) == password, handled=False)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        kwargs = {}
        if self.tls_context is not None:
            kwargs = {"tls_context": self.tls_context, "require_starttls": True}
        if self.users is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
            kwargs.setdefault("auth_require_tls", False)
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
            enable_SMTPUTF8=self.smtputf8,
            **kwargs,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 10) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= count, timeout)

    def message_ids(self) -> list[str]:
        return [str(r.parsed()["Message-ID"]).strip("<>") for r in self.received]

    def smtp_config(self, security: str = "none", extra: str = "") -> str:
        """The `smtp:` section of maildesk.yaml that points at this server."""
        return (
            f"smtp:\n  host: 127.0.0.1\n  port: {self.port}\n  security: {security}\n"
            f"  timeout: 5\n{extra}"
        )


def _need_aiosmtpd() -> None:
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        unavailable("aiosmtpd not installed (pip install '.[test]')")


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A recording SMTP server on a free loopback port (plain SMTP)."""
    _need_aiosmtpd()
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@dataclass
class TestCA:
    """A throwaway certificate authority and a server certificate for 127.0.0.1."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self):
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="session")
def test_ca() -> Iterator[TestCA]:
    """A CA and a server certificate (SAN 127.0.0.1, localhost) made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl not installed (Debian package openssl)")
    root = Path(tempfile.mkdtemp(prefix="maildesk-ca-"))

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=root)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=maildesk test CA",
        "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr")  # fmt: skip
    (root / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf")  # fmt: skip
    try:
        yield TestCA(root / "ca.pem", root / "server.pem", root / "server.key")
    finally:
        shutil.rmtree(root, ignore_errors=True)
