"""The imapclient adapter: one blocking connection to one mailbox folder.

Everything here blocks; the daemon runs it in the mailbox's own thread. imapclient's
errors become SourceError (MailboxAuthError for refused credentials) naming the
mailbox, and its bytes-keyed dicts never leave this module.

What imapclient does not expose (untagged responses collected during other commands,
or already buffered when IDLE starts) is reached in `imap_internals` alone.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from maildesk.common.config import MailboxConfig
from maildesk.common.errors import MailboxAuthError, SecretError, SourceError
from maildesk.intake.imap_internals import buffered_responses, imaplib_of
from maildesk.intake.imap_pieces import MessagePieces
from maildesk.intake.raw_mail import IncomingMail, discard_all

log = logging.getLogger(__name__)

# One FETCH asks for at most this many bytes of mail, so a batch of big messages
# cannot exhaust memory.
MAX_FETCH_BYTES = 64 * 1024 * 1024
# IDLE is left at least this often (RFC 2177 says servers may drop it after 30 min).
MAX_IDLE_SECONDS = 25 * 60


@dataclass(frozen=True)
class FolderInfo:
    """What SELECT told us about the folder."""

    uidvalidity: int
    uidnext: int
    exists: int


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes
    mail: IncomingMail | None = None  # a big message, spooled to disk instead of `raw`


class ImapSource:
    """A connection to `config.folder` of one IMAP mailbox."""

    def __init__(self, config: MailboxConfig):
        self.config = config
        self.client: IMAPClient | None = None
        self.folder: FolderInfo | None = None
        self._told_no_expunge = False  # said once: moved mail stays \\Deleted

    @property
    def where(self) -> str:
        return f"mailbox {self.config.name} ({self.config.host}:{self.config.effective_port})"

    # --- connection ---------------------------------------------------------------------

    def connect(self) -> FolderInfo:
        """Connect, secure, log in and select the folder."""
        cfg = self.config
        if cfg.security == "none" and not _is_loopback(cfg.host):
            log.warning("%s: password sent without TLS (security: none)", self.where)
        with self._errors("connect"):
            client = IMAPClient(
                cfg.host,
                port=cfg.effective_port,
                ssl=cfg.security == "tls",
                ssl_context=self._tls_context() if cfg.security == "tls" else None,
                timeout=cfg.timeout,
            )
        self.client = client
        if cfg.security == "starttls":
            with self._errors("STARTTLS"):
                client.starttls(self._tls_context())
        self._login(client)
        with self._errors(f"select folder {cfg.folder}"):
            selected = client.select_folder(cfg.folder)
        self.folder = FolderInfo(
            uidvalidity=int(selected[b"UIDVALIDITY"]),
            uidnext=int(selected.get(b"UIDNEXT", 0)),
            exists=int(selected.get(b"EXISTS", 0)),
        )
        if cfg.move_to:
            self._ensure_folder(cfg.move_to)
        return self.folder

    def _tls_context(self) -> ssl.SSLContext:
        ca = self.config.ca_file
        try:
            return ssl.create_default_context(cafile=str(ca) if ca else None)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"{self.where}: cannot load ca_file {ca}: {exc}") from None

    def _login(self, client: IMAPClient) -> None:
        cfg = self.config
        try:
            if cfg.oauth2_token is not None:
                token = cfg.oauth2_token.read(f"mailbox {cfg.name} OAuth2 token")
                with self._errors("XOAUTH2 login"):
                    client.oauth2_login(cfg.username, token)
            else:
                assert cfg.password is not None
                password = cfg.password.read(f"mailbox {cfg.name} password")
                with self._errors("login"):
                    client.login(cfg.username, password)
        except SecretError as exc:
            raise MailboxAuthError(f"{self.where}: {exc}") from None

    def _ensure_folder(self, folder: str) -> None:
        client = self._client()
        with self._errors(f"create folder {folder}"):
            if not client.folder_exists(folder):
                client.create_folder(folder)
                log.info("%s: created folder %s for processed mail", self.where, folder)

    def close(self) -> None:
        """Log out (best effort); the connection is unusable afterwards."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            try:
                client.shutdown()
            except Exception:
                log.debug("%s: connection already closed", self.where)

    # --- reading ------------------------------------------------------------------------

    def new_uids(self, after_uid: int) -> list[int]:
        """UIDs above `after_uid`, not marked deleted, in ascending order."""
        client = self._client()
        # Forget the untagged responses imaplib collected (EXISTS, EXPUNGE after MOVE ...):
        # this search covers them, and over months they would pile up. An EXISTS that
        # arrives after it is noticed when IDLE starts (see wait()).
        imaplib_of(client).untagged_responses.clear()
        with self._errors("search"):
            found = client.search(["UID", f"{after_uid + 1}:*", "NOT", "DELETED"])
        # "n:*" also matches the highest UID when it is below n (RFC 3501 6.4.8).
        return sorted(int(u) for u in found if int(u) > after_uid)

    def unacknowledged_uids(self, upto_uid: int) -> list[int]:
        """UIDs up to `upto_uid` still waiting for an acknowledgement."""
        if upto_uid < 1:
            return []
        criteria: list[Any] = ["UID", f"1:{upto_uid}", "NOT", "DELETED"]
        if not self.config.move_to:
            criteria.append("UNSEEN")  # with move_to, whatever is left was not moved yet
        with self._errors("search"):
            found = self._client().search(criteria)
        return sorted(int(u) for u in found if int(u) <= upto_uid)

    def batches(self, uids: Sequence[int], batch_size: int) -> Iterator[list[int]]:
        """Split UIDs into batches of at most `batch_size` messages and MAX_FETCH_BYTES."""
        for start in range(0, len(uids), batch_size):
            chunk = list(uids[start : start + batch_size])
            sizes = self._sizes(chunk)
            batch: list[int] = []
            total = 0
            for uid in chunk:
                size = sizes.get(uid, 0)
                if batch and total + size > MAX_FETCH_BYTES:
                    yield batch
                    batch, total = [], 0
                batch.append(uid)
                total += size
            if batch:
                yield batch

    def _sizes(self, uids: list[int]) -> dict[int, int]:
        with self._errors("fetch sizes"):
            data = self._client().fetch(uids, ["RFC822.SIZE"])
        return {int(uid): int(item.get(b"RFC822.SIZE", 0)) for uid, item in data.items()}

    def fetch(
        self,
        uids: Sequence[int],
        spool: Callable[[BinaryIO], IncomingMail] | None = None,
        big: int = 4 << 20,
    ) -> list[FetchedMessage]:
        """The raw messages (BODY.PEEK[]: not marked \\Seen); vanished UIDs are left out.

        With `spool`, a message over `big` bytes is fetched in 1 MiB pieces straight
        into a spool file, so a huge message is never held in memory whole.
        """
        if not uids:
            return []
        found: list[FetchedMessage] = []
        try:
            if spool is not None:
                sizes = self._sizes(list(uids))
                for uid in [u for u in uids if sizes.get(u, 0) > big]:
                    fetched = self._fetch_big(uid, spool)
                    if fetched is not None:
                        found.append(fetched)
                uids = [u for u in uids if sizes.get(u, 0) <= big]
            if uids:
                with self._errors("fetch"):
                    data = self._fetch_small(list(uids))
                for uid, item in data.items():
                    raw = item.get(b"BODY[]")
                    if raw is not None:
                        found.append(FetchedMessage(int(uid), bytes(raw)))
        except BaseException:  # the batch is fetched again: its big messages' spool files go
            discard_all(m.mail for m in found)
            raise
        return sorted(found, key=lambda m: m.uid)

    def _fetch_small(self, uids: list[int]) -> dict[int, Any]:
        """BODY.PEEK[] of `uids`. When the server refuses the batch (NO: a message it
        cannot read, such as Exchange's corrupt items), each is asked for alone, and one
        it refuses alone is left out, logged, and asked for again next time: it must not
        hold up the messages after it. A broken connection still fails the batch."""
        try:
            return self._client().fetch(uids, ["BODY.PEEK[]"])
        except imaplib.IMAP4.abort:
            raise
        except IMAPClientError as exc:
            if len(uids) > 1:
                found = {k: v for uid in uids for k, v in self._fetch_small([uid]).items()}
                if not found:  # every one refused: the server's trouble, not a message's
                    raise
                return found
            why = _text(exc)
            log.error("%s: UID %d not fetched, the server says: %s", self.where, uids[0], why)
            return {}

    def _fetch_big(
        self, uid: int, spool: Callable[[BinaryIO], IncomingMail]
    ) -> FetchedMessage | None:
        """One big message spooled piece by piece; None when it is gone (expunged
        meanwhile: the server returns nothing for it), as for a small one."""
        pieces = MessagePieces(self._client(), uid)
        with self._errors("fetch"):
            mail = spool(pieces)
        if pieces.offset == 0:
            mail.discard()
            return None
        return FetchedMessage(uid, b"", mail)

    # --- acknowledging ------------------------------------------------------------------

    def acknowledge(self, uids: Sequence[int]) -> None:
        """Mark committed messages \\Seen, or move them to `move_to`."""
        if not uids:
            return
        client = self._client()
        target = self.config.move_to
        with self._errors("acknowledge"):
            if not target:
                client.add_flags(list(uids), [b"\\Seen"], silent=True)
            elif client.has_capability("MOVE"):
                client.move(list(uids), target)
            else:
                self._copy_and_delete(client, list(uids), target)

    def _copy_and_delete(self, client: IMAPClient, uids: list[int], target: str) -> None:
        """MOVE by hand: COPY, flag \\Deleted, and expunge exactly these UIDs (UIDPLUS).

        Without UIDPLUS the copies are left flagged \\Deleted: a plain EXPUNGE would also
        remove every message another client flagged \\Deleted and meant to keep for now.
        """
        client.copy(uids, target)
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        elif not self._told_no_expunge:
            self._told_no_expunge = True
            log.info(
                "%s: the server has neither MOVE nor UIDPLUS; mail moved to %s stays in %s "
                "flagged \\Deleted until a mail client expunges the folder",
                self.where,
                target,
                self.config.folder,
            )

    # --- waiting ------------------------------------------------------------------------

    @property
    def can_idle(self) -> bool:
        return self.config.idle and self._client().has_capability("IDLE")

    def wait(self, seconds: float, interrupt: threading.Event) -> None:
        """Wait for new mail: IDLE where the server has it, otherwise sleep; at most `seconds`.

        Returns early when `interrupt` is set or the server reports new messages.
        """
        if not self.can_idle:
            interrupt.wait(seconds)
            with self._errors("NOOP"):
                self._client().noop()
            return
        client = self._client()
        with self._errors("IDLE"):
            client.idle()
        try:
            # Mail that arrived since the last search was announced by an untagged EXISTS
            # during later commands or IDLE's start, which idle_check() never returns.
            if "EXISTS" not in imaplib_of(client).untagged_responses:
                self._idle_until(client, min(seconds, MAX_IDLE_SECONDS), interrupt)
        finally:
            with self._errors("IDLE"):
                client.idle_done()  # on a dead connection this is where it shows

    def _idle_until(self, client: IMAPClient, seconds: float, interrupt: threading.Event) -> None:
        deadline = time.monotonic() + seconds
        while not interrupt.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            step = min(1.0, left)
            started = time.monotonic()
            with self._errors("IDLE"):
                responses = buffered_responses(client) or client.idle_check(timeout=step)
            if any(_is_bye(r) for r in responses):
                raise SourceError(f"{self.where}: the server closed the connection (BYE)")
            if any(_is_new_mail(r) for r in responses):
                return
            if not responses and time.monotonic() - started < step / 2:
                return  # woke without data: the connection closed; idle_done will say so

    # --- plumbing -----------------------------------------------------------------------

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise SourceError(f"{self.where}: not connected")
        return self.client

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn imapclient, socket and TLS errors into SourceError naming the mailbox."""
        try:
            yield
        except LoginError as exc:
            raise MailboxAuthError(
                f"{self.where}: {doing} refused for {self.config.username}: {_text(exc)}; "
                "check the username and password (or token)"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                f"{self.where}: TLS certificate not trusted ({exc.verify_message}); "
                "set ca_file: to the CA that signed it"
            ) from None
        except TimeoutError:
            raise SourceError(
                f"{self.where}: {doing} timed out after {self.config.timeout:g} s"
            ) from None
        except (IMAPClientError, imaplib.IMAP4.abort, OSError, EOFError) as exc:
            raise SourceError(f"{self.where}: {doing} failed: {_text(exc)}") from None


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    text = arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
    if len(text) > 3 and text[:2] in ("b'", 'b"') and text[-1] == text[1]:
        text = text[2:-1]  # imapclient wraps server bytes in str(): "b'[AUTHENTICATIONFAILED]...'"
    return text or type(exc).__name__


def _is_bye(response: tuple[Any, ...]) -> bool:
    return bool(response) and response[0] == b"BYE"


def _is_new_mail(response: tuple[Any, ...]) -> bool:
    return len(response) > 1 and response[1] in (b"EXISTS", b"RECENT")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
