"""Real servers for tests, started on loopback by the suite: PostgreSQL and Dovecot.

Under CI=true a server that cannot start is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def start(self) -> None:
        """Start (or restart) the cluster in `root/data` and wait until it accepts connections."""
        bindir = _pg_bin()
        assert bindir is not None
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        log = self.root / "postgres.log"
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(self.root / "data")]
        started = subprocess.run(
            _as_postgres([*pg_ctl, "-l", str(log), "-w", "-o", options, "start"]),
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            text = log.read_text() if log.exists() else ""
            pytest.fail(f"PostgreSQL did not start: {started.stderr}\n{text[-2000:]}")

    def stop(self, mode: str = "immediate") -> None:
        """Stop, cutting every client off. "immediate" is a crash: with this test cluster's
        synchronous_commit=off the last commits are lost; "fast" is a clean restart."""
        bindir = _pg_bin()
        assert bindir is not None
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(self.root / "data")]
        subprocess.run(_as_postgres([*pg_ctl, "-m", mode, "-w", "stop"]), capture_output=True)

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
    server = PostgresServer("127.0.0.1", port, root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
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
    peer: tuple | None = None  # the client's address and port: one per SMTP session

    def parsed(self):
        import email
        import email.policy

        return email.message_from_bytes(self.data, policy=email.policy.default)


class SmtpSink:
    """A real SMTP server (aiosmtpd Controller) that records messages.

    Tests script its answers: `refuse[address] = "550 5.1.1 ..."` refuses a recipient,
    `data_replies` holds answers given to the next DATA commands before "250";
    `data_delays` holds seconds to sit on the next DATA commands before answering.
    `refuse_auth(login, password)`, when set, refuses every AUTH with the reply it returns
    (a careless server may quote the credentials back). `on_message` is called with
    each Received (e.g. to deliver it to another desk).
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
        self.data_delays: list[float] = []
        self.on_message = None
        self.refuse_auth = None
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
        if self.data_delays:
            import asyncio

            await asyncio.sleep(self.data_delays.pop(0))
        if self.data_replies:
            return self.data_replies.pop(0)
        item = Received(
            envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, session.peer
        )
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()
        if self.on_message is not None:
            self.on_message(item)
        return "250 2.0.0 OK queued"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if isinstance(auth_data, LoginPassword):
            if self.refuse_auth is not None:
                reply = self.refuse_auth(auth_data.login, auth_data.password)
                return AuthResult(success=False, handled=False, message=reply)
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


# --- Dovecot -------------------------------------------------------------------------------

DOVECOT_MAIL_UID = 5000  # any non-root uid: Dovecot refuses mail access as root

_DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
instance_name = {instance}
protocols = imap lmtp
listen = 127.0.0.1
log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
auth_failure_delay = 0
first_valid_uid = {uid}
first_valid_gid = {uid}
mail_uid = {uid}
mail_gid = {uid}
mail_location = maildir:{d}/mail/%d/%n/Maildir
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
userdb {{
  driver = static
  args = home={d}/mail/%d/%n
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
"""


class DovecotServer:
    """A private Dovecot on loopback: IMAP (STARTTLS offered), IMAPS and LMTP, passwd-file users."""

    host = "127.0.0.1"

    def __init__(self, root: Path, name: str = "main", extra_conf: str = ""):
        self.root = root
        self.name = name
        self.instance = f"maildesk-{root.name}"  # unique: its processes are found by it
        self.extra_conf = extra_conf
        self.users: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._counter = 0
        self._started = False
        for sub in ("run", "state", "mail", "users"):
            (root / sub).mkdir(exist_ok=True)
        os.chown(root / "mail", DOVECOT_MAIL_UID, DOVECOT_MAIL_UID)
        self._make_certificate()
        self._configure()

    def _configure(self) -> None:
        """dovecot.conf with three free ports."""
        self.imap_port, self.imaps_port, self.lmtp_port = free_port(), free_port(), free_port()
        (self.root / "dovecot.conf").write_text(
            _DOVECOT_CONF.format(
                d=self.root,
                instance=self.instance,
                uid=DOVECOT_MAIL_UID,
                imap=self.imap_port,
                imaps=self.imaps_port,
                lmtp=self.lmtp_port,
            )
            + self.extra_conf
        )

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate clients must trust for IMAPS/STARTTLS."""
        return self.root / "cert.pem"

    def _make_certificate(self) -> None:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", str(self.root / "key.pem"), "-out", str(self.root / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        (self.root / "key.pem").chmod(0o644)  # read by Dovecot's unprivileged processes

    def start(self) -> None:
        """Start the master and wait for the IMAP greeting. The first start takes other
        ports if one it was given has been taken meanwhile (free_port only names a port
        free when asked: a server of the other test worker may bind it first)."""
        for attempt in range(1 if self._started else 3):
            if attempt:
                self._configure()
            if self._start_once():
                self._started = True
                return
        pytest.fail(f"Dovecot did not start:\n{self.log()[-2000:]}{self._stderr()[-2000:]}")

    def _start_once(self) -> bool:
        with (self.root / "dovecot.stderr").open("wb") as stderr:  # errors before its log
            self.proc = subprocess.Popen(
                ["dovecot", "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 20
        while not self._greets():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(hard=True)
                return False
            time.sleep(0.01)
        return True

    def _stderr(self) -> str:
        path = self.root / "dovecot.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.imap_port), timeout=1) as s:
                return s.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def stop(self, *, hard: bool = False) -> None:
        """Stop Dovecot and every process of it, as `systemctl stop dovecot` does.

        Without a service manager, IMAP processes would linger ~10 s after the master.
        `hard` kills instead of waiting ~1 s for a clean shutdown.
        """
        if self.proc is not None and self.proc.poll() is None:
            if hard:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(15)
        self.proc = None
        for pid in self._leftover_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _leftover_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"{self.instance}/".encode() in cmdline:
                pids.append(int(entry.name))
        return pids

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_user(self, local: str = "user", password: str | None = None) -> str:
        """A new, empty mailbox user; returns its address (unique per call)."""
        self._counter += 1
        address = f"{local}{self._counter}-{os.getpid()}@example.test"
        self.set_password(address, password or f"pw-{self._counter}")
        return address

    def set_password(self, address: str, password: str, extra_fields: str = "") -> None:
        """`extra_fields` are passdb extra fields: "nologin reason=Text" makes Dovecot
        refuse the right password with NO Text."""
        # One passwd-file per user: Dovecot misses a change to a file rewritten within
        # the second it last read it.
        self.users[address] = password
        line = f"{address}:{{PLAIN}}{password}" + (f"::::::{extra_fields}" if extra_fields else "")
        (self.root / "users" / address).write_text(line + "\n")

    def client(self, user: str) -> Any:
        """A logged-in imapclient connection (plaintext, loopback)."""
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client

    def deliver(self, user: str, raw: bytes, sender: str = "sender@example.org") -> None:
        """Deliver one message to `user`'s INBOX over LMTP, as an MTA would."""
        import smtplib

        with smtplib.LMTP(self.host, self.lmtp_port) as lmtp:
            lmtp.sendmail(sender, [user], raw)  # one recipient per transaction (smtplib desyncs)

    def append(
        self, user: str, messages: list[bytes], folder: str = "INBOX", flags: list[str] = ()
    ) -> None:
        """APPEND messages into `folder` (MULTIAPPEND in chunks), creating the folder if needed."""
        items = [{"msg": m, "flags": list(flags)} for m in messages]
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for start in range(0, len(items), 200):
                client.multiappend(folder, items[start : start + 200])

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags (as str) of every message in `folder`."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, ["FLAGS"]) if uids else {}
            return {
                uid: {f.decode() if isinstance(f, bytes) else str(f) for f in data[b"FLAGS"]}
                for uid, data in fetched.items()
            }

    def count(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return 0
            return int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])


@contextlib.contextmanager
def running_dovecot(name: str, extra_conf: str = "") -> Iterator[DovecotServer]:
    """A started Dovecot in a fresh tmpfs folder, removed afterwards (skip/fail if missing);
    `extra_conf` is appended to its dovecot.conf."""
    if shutil.which("dovecot") is None:
        unavailable("Dovecot is not installed (Debian packages dovecot-imapd dovecot-lmtpd)")
    if shutil.which("openssl") is None:
        unavailable("openssl is not installed (it makes the test Dovecot's certificate)")
    if os.geteuid() != 0:
        unavailable("the test Dovecot runs its mail processes as another uid; run as root")
    server = DovecotServer(scratch_dir(f"maildesk-dovecot-{name}-"), name, extra_conf)
    server.start()
    try:
        yield server
    finally:
        server.stop(hard=True)
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One Dovecot for the session; tests take fresh users with `add_user()`."""
    with running_dovecot("session") as server:
        yield server


@pytest.fixture
def own_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot of this test's own, for tests that stop or restart the server, or fail
    logins (Dovecot then delays every login from 127.0.0.1 by seconds)."""
    with running_dovecot("own") as server:
        yield server
