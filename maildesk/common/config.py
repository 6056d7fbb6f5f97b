"""maildesk.yaml: typed settings, loaded explicitly and validated with file and line."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from maildesk.common.config_location import CONFIG_ENV as CONFIG_ENV
from maildesk.common.config_location import DEFAULT_CONFIG as DEFAULT_CONFIG
from maildesk.common.config_location import config_path as config_path
from maildesk.common.db_url import DEFAULT_DATABASE_URL
from maildesk.common.notify_config import NotifyConfig
from maildesk.common.redact import remember_secret
from maildesk.common.secret_source import Secret

MIN_PARSER_MEMORY = 64 << 20  # limits.parser_memory_bytes, when set
SPOOL_PREFIX = "spool@"
# An authserv-id as authres reads it: an RFC 5322 dot-atom, in practice a host name.
_AUTHSERV_ID = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: str = DEFAULT_DATABASE_URL
    password: Secret | None = None


class StorageConfig(_Section):
    # Raw messages and attachments are stored under their SHA-256: up to inline_max_bytes
    # in the `blobs` table (committed with the ticket change); bigger ones in chunks in
    # the database ("database", the default on PostgreSQL: no shared filesystem needed)
    # or as files in `path` ("files", the default on SQLite). Whatever the backend, `path`
    # holds the spool files of big messages while they are read.
    backend: Literal["files", "database"] | None = None
    path: Path = Path("data")
    inline_max_bytes: int = Field(default=1024 * 1024, ge=0)
    fsync: bool = True

    def backend_for(self, database_url: str) -> Literal["files", "database"]:
        """The backend in force: as set, else "database" on PostgreSQL, "files" on SQLite."""
        if self.backend is not None:
            return self.backend
        return "files" if database_url.startswith("sqlite") else "database"


class TicketsConfig(_Section):
    prefix: str = Field(default="MD", pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$")
    support_address: str = "support@example.com"
    support_name: str = "Support"
    comment_address: str | None = None
    # Domain of the Message-IDs we create; mail coming back with it is our own.
    message_id_domain: str | None = None
    # A reply to a closed ticket opens a new, linked ticket ("new") or reopens it ("reopen").
    reply_to_closed: Literal["new", "reopen"] = "new"
    auto_close_days: float = Field(default=3, ge=0)
    # "thanks" from the requester on a resolved ticket keeps it resolved.
    thanks_keeps_resolved: bool = True
    # A stranger quoting a ticket's token opens a new ticket ("new") or is held ("hold").
    stranger_with_token: Literal["new", "hold"] = "new"
    # Your MX's authserv-id(s): only the topmost Authentication-Results headers they wrote
    # count (see triage.auth_results). Before require_agent_auth, whose check reads it.
    trusted_authserv: list[str] = []
    # How an agent's mail is known to be the agent's (README: Security model). "signed":
    # it came back through the signed reply address of a notification sent to that agent
    # about that ticket, or a trusted Authentication-Results vouches for it. "none": the
    # From address alone, which anyone can forge.
    agent_verification: Literal["signed", "none"] = "signed"
    # Signs reply addresses; `maildesk init` makes one. After a rotation the previous
    # secret's addresses keep working until previous_reply_secret_until.
    reply_secret: Secret | None = None
    previous_reply_secret: Secret | None = None
    previous_reply_secret_until: datetime | None = None
    # Agents' mail counts only if those servers report SPF or DKIM pass for their domain
    # (a signed reply address alone is then not enough).
    require_agent_auth: bool = False
    # A customer's mail an agent forwards on their behalf gets them the acknowledgement.
    forward_ack: bool = True
    pause_sla_when_pending: bool = True
    sla_warning_fraction: float = Field(default=0.8, gt=0, lt=1)
    # Remind the assignee (or queue) when an open ticket had no agent action this long.
    remind_after_hours: float = Field(default=24, ge=0)
    language: str = "en"

    @property
    def id_domain(self) -> str:
        return self.message_id_domain or self.support_address.rpartition("@")[2]

    @field_validator("trusted_authserv")
    @classmethod
    def _authserv_ids(cls, value: list[str]) -> list[str]:
        ids = [v.strip().lower() for v in value]
        bad = ", ".join(repr(v) for v in ids if not _AUTHSERV_ID.fullmatch(v))
        if bad:
            raise PydanticCustomError(
                "authserv_id",
                "{bad} is not an authserv-id: write the name your mail server puts before the "
                "first ';' of its Authentication-Results header, e.g. mx.example.com",
                {"bad": bad},
            )
        return ids

    @field_validator("require_agent_auth")
    @classmethod
    def _needs_trusted_servers(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("trusted_authserv") == []:
            raise PydanticCustomError(
                "needs_trusted_authserv",
                "true also needs tickets.trusted_authserv, the authserv-id your MX writes first "
                "in its Authentication-Results header (e.g. [mx.example.com]); without it a "
                "header the sender wrote could pass for the MX's. Set it, or set this to false",
            )
        return value


class MailboxConfig(_Section):
    name: str
    host: str
    port: int | None = None
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: Path | None = None
    username: str
    password: Secret | None = None
    oauth2_token: Secret | None = None
    folder: str = "INBOX"
    queue: str | None = None
    # After a message is committed: mark it \Seen, or move it to this folder.
    move_to: str | None = None
    poll_seconds: float = Field(default=60, gt=0)
    idle: bool = True
    # Messages fetched and committed together; 200 ingests ~10% faster than 100 (less
    # work per message for lookups and commits) while a commit still comes every ~0.2 s.
    batch_size: int = Field(default=200, ge=1, le=5000)
    # Seconds to wait for the server to connect or answer a command.
    timeout: float = Field(default=60, gt=0)

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)

    @model_validator(mode="after")
    def _one_credential(self) -> MailboxConfig:
        if (self.password is None) == (self.oauth2_token is None):
            raise ValueError(
                f"mailbox {self.name}: set exactly one of password: or oauth2_token: (XOAUTH2)"
            )
        return self


class DaemonConfig(_Section):
    """How `maildesk run` shares mailboxes with other daemons and retries failures."""

    # Daemons share the mailboxes through leases of this length; a daemon's heartbeat
    # lasts half of it, so a dead daemon's mailboxes are taken over within 2/3 of it.
    lease_seconds: float = Field(default=60, ge=1)
    # Reconnect delays double from 1 s up to this, with random jitter.
    max_backoff_seconds: float = Field(default=300, ge=1)
    # This machine's name in leases and `maildesk status` (default: the host name).
    node: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    # Daemons on one PostgreSQL take turns at batches where least_open or round_robin
    # chooses among several agents, so the choice counts every ticket (strict). False:
    # each daemon chooses from what is committed and balances its own batch; the counts
    # may then be off by about one ticket per daemon until the next batch, and the
    # daemons no longer wait for each other.
    assignment_lock: bool = True


class MaildirConfig(_Section):
    """A Maildir the daemon polls (what Postfix, Exim or Dovecot deliver into)."""

    name: str
    path: Path
    queue: str | None = None
    poll_seconds: float = Field(default=10, gt=0)
    batch_size: int = Field(default=200, ge=1, le=5000)


class SpoolConfig(_Section):
    """The spool `maildesk ingest -` writes into, as the daemon drains it. Not written
    by hand: maildesk.yaml names only its folder (`spool:`); see `Config.spool_source`."""

    name: str
    path: Path
    queue: str | None = None  # spooled files carry their own queue, if any
    # The drain also wakes within 0.1 s when new/ changes (service.spool_ingest).
    poll_seconds: float = 1.0
    batch_size: int = 200


SourceConfig = MailboxConfig | MaildirConfig | SpoolConfig


class SmtpConfig(_Section):
    host: str = "localhost"
    port: int | None = None
    security: Literal["tls", "starttls", "none"] = "starttls"
    ca_file: Path | None = None
    username: str | None = None
    password: Secret | None = None
    timeout: float = 30
    max_attempts: int = Field(default=10, ge=1)
    # SMTP sessions a sender keeps open and sends over side by side (a ticket's mail
    # always goes through one, in order): one session waits for every server reply.
    sessions: int = Field(default=2, ge=1, le=20)

    @property
    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]


class LimitsConfig(_Section):
    max_message_bytes: int = Field(default=40 * 1024 * 1024, gt=0)
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    # Oversized messages: keep everything raw, or only their headers.
    oversized_keep: Literal["raw", "headers"] = "raw"
    # Longest a message may take to parse (slower ones are quarantined), and a
    # notification to render (slower ones fail).
    processing_seconds: float = Field(default=30, gt=0)
    # Parse in a child process, so a slow message can be stopped at processing_seconds
    # on any thread. Off: parse in-process; the limit then holds only on the main thread.
    isolate_parser: bool = True
    # The most memory (address space) a parser child may use; a message that needs more
    # is quarantined. 0: no limit. Not enforced with isolate_parser: false.
    parser_memory_bytes: int = Field(default=1 << 30, ge=0)
    # A parser or render child with no work for this long exits (the next one starts in
    # about 0.2 s), so an idle daemon is one process. 0: children stay.
    child_idle_seconds: float = Field(default=60, ge=0)
    auto_replies_per_hour: int = Field(default=5, ge=0)
    # Automatic mail that matched no ticket (`maildesk automatic list`) is kept this long.
    automatic_keep_days: float = Field(default=30, gt=0)

    @field_validator("parser_memory_bytes")
    @classmethod
    def _room_to_start(cls, value: int) -> int:
        if 0 < value < MIN_PARSER_MEMORY:
            raise ValueError(
                f"must be 0 (no limit) or at least {MIN_PARSER_MEMORY >> 20} MiB "
                "(67108864): a parser child takes about 32 MiB before it reads anything"
            )
        return value


class SatisfactionConfig(_Section):
    # Signs the rating links in the "resolved" notification (see README, Satisfaction).
    secret: Secret | None = None
    # Rating links go to <link_base>?token=... (a web page that runs `maildesk rate`);
    # without it they are mailto: links that reply to the support address.
    link_base: str | None = None
    link_days: float = Field(default=30, gt=0)  # how long a rating link stays valid


class Config(_Section):
    """Everything in maildesk.yaml; paths are already resolved against its folder."""

    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    tickets: TicketsConfig = TicketsConfig()
    rules: Path = Path("rules.yaml")
    templates: Path | None = None
    mailboxes: list[MailboxConfig] = []
    maildirs: list[MaildirConfig] = []
    # Where `maildesk ingest -` spools messages for the daemon. The MTA's pipe reads this
    # line without the YAML library (intake.spool): keep it a plain path on one line.
    spool: Path = Path("spool")
    daemon: DaemonConfig = DaemonConfig()
    smtp: SmtpConfig = SmtpConfig()
    limits: LimitsConfig = LimitsConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_port: int | None = None
    # Where /metrics listens: loopback unless an admin opens it (it has no authentication).
    metrics_address: str = "127.0.0.1"
    knowledge_base: Path | None = None
    satisfaction: SatisfactionConfig = SatisfactionConfig()
    notify: NotifyConfig = NotifyConfig()
    source: str = Field(default="<defaults>", exclude=True)

    @field_validator("mailboxes")
    @classmethod
    def _unique_mailbox_names(cls, value: list[MailboxConfig]) -> list[MailboxConfig]:
        names = [m.name for m in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mailbox names must be unique; repeated: {', '.join(dupes)}")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _an_ip_address(cls, value: str) -> str:
        import ipaddress

        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(
                "must be an IP address: 127.0.0.1 (this machine only), an address of one "
                "interface, or 0.0.0.0 / :: (every interface)"
            ) from None

    @model_validator(mode="after")
    def _no_maildir_named_like_a_mailbox(self) -> Config:
        taken = {m.name for m in self.mailboxes}
        names = [m.name for m in self.maildirs]
        dupes = sorted({n for n in names if n in taken or names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"maildirs and mailboxes share one set of names; repeated: {', '.join(dupes)}"
            )
        reserved = sorted(n for n in [*taken, *names] if n.startswith(SPOOL_PREFIX))
        if reserved:
            raise ValueError(
                f"names starting with {SPOOL_PREFIX} are the spool's; rename {', '.join(reserved)}"
            )
        return self

    @model_validator(mode="after")
    def _blob_backend_fits_the_database(self) -> Config:
        # Chunks are committed in a transaction of their own while the batch's is open:
        # on SQLite that second writer would wait for the batch's write lock forever.
        if self.storage.backend == "database" and self.database.url.startswith("sqlite"):
            raise ValueError(
                "storage.backend: database needs PostgreSQL; with SQLite big blobs are "
                "files under storage.path (leave storage.backend out, or set it to files)"
            )
        return self

    @property
    def spool_source(self) -> SpoolConfig:
        """The spool as a source: one per machine (node), since each machine's MTA
        writes its own; daemons on one machine share it through its lease."""
        node = self.daemon.node or os.uname().nodename
        return SpoolConfig(name=f"{SPOOL_PREFIX}{node}", path=self.spool)

    @property
    def sources(self) -> list[SourceConfig]:
        """Everything the daemon ingests: IMAP mailboxes, Maildirs, then the spool."""
        return [*self.mailboxes, *self.maildirs, self.spool_source]

    def database_url(self) -> str:
        """The SQLAlchemy URL with the password filled in from its secret, if any."""
        from maildesk.common.db_url import parse_url

        url = parse_url(self.database.url)
        remember_secret(url.password, "database URL")
        if self.database.password is None:
            return self.database.url
        secret = self.database.password.read("database password")
        return url.replace(password=secret).render(hide_password=False)
