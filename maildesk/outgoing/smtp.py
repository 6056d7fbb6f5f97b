"""SMTP transport: one reused connection, verified TLS, server replies turned into SendError.

The sender talks to this through `Transport.send(envelope_from, recipients, raw)`;
tests and other transports only need that and `close()`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from maildesk.common.config import SmtpConfig
from maildesk.common.errors import SendError, SmtpUnavailable

log = logging.getLogger(__name__)

# Servers drop idle sessions (Postfix after 300 s); probe with NOOP after this long.
IDLE_PROBE_SECONDS = 30.0


@dataclass(frozen=True)
class Refusal:
    """A server's refusal of one recipient."""

    code: int
    text: str

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class Transport(Protocol):
    """Delivers raw messages; raises SendError (or SmtpUnavailable) on failure."""

    async def send(
        self, envelope_from: str, recipients: list[str], raw: bytes
    ) -> dict[str, Refusal]:
        """Send `raw`; return the recipients refused while others were accepted."""
        ...

    async def close(self) -> None:
        """End the session politely."""
        ...


class RecipientsRefused(SendError):
    """The server accepted none of the recipients."""

    def __init__(self, refused: dict[str, Refusal]):
        self.refused = refused
        detail = "; ".join(f"{a}: {r}" for a, r in refused.items())
        super().__init__(
            f"recipients refused: {detail}", permanent=all(r.permanent for r in refused.values())
        )


class SmtpTransport:
    """aiosmtplib behind `Transport`: connects on first use and reuses the session."""

    def __init__(self, config: SmtpConfig, *, helo: str | None = None, password: str | None = None):
        self.config = config
        self.helo = helo
        self.password = password
        self._smtp: aiosmtplib.SMTP | None = None
        self._last_used = 0.0

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.effective_port}"

    async def send(
        self, envelope_from: str, recipients: list[str], raw: bytes
    ) -> dict[str, Refusal]:
        """One mail transaction; a dropped idle session is reopened before anything is sent."""
        smtp = await self._session()
        # Internationalised addresses (RFC 6531) need the server's SMTPUTF8.
        utf8 = not all(a.isascii() for a in (envelope_from, *recipients))
        try:
            async with asyncio.timeout(self.config.timeout):
                try:
                    await self._mail(smtp, envelope_from, utf8)
                except aiosmtplib.SMTPServerDisconnected:
                    # Dropped while idle; nothing was sent yet, so open a new session once.
                    self._smtp = None
                    smtp = await self._session()
                    await self._mail(smtp, envelope_from, utf8)
                refused = await self._recipients(smtp, recipients, utf8)
            if len(refused) == len(recipients):
                await _reset(smtp)
                raise RecipientsRefused(refused)
            async with asyncio.timeout(self.config.timeout):
                await smtp.data(raw, timeout=None)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing the session
                await self.close()
            else:
                await _reset(smtp)
            raise SendError(
                f"{self.where} answered {exc.code} {exc.message}", permanent=exc.code >= 500
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Cut off in the middle (a timeout is an OSError too): the message may or may
            # not have arrived, and a late answer could be taken for the next command's.
            smtp.close()
            self._smtp = None
            reason = f"no answer within {self.config.timeout:g} s" if _timed_out(exc) else exc
            raise SendError(
                f"{self.where}: connection lost while sending: {reason}", permanent=False
            ) from None
        self._last_used = time.monotonic()
        return refused

    async def close(self) -> None:
        """QUIT, ignoring a server that is already gone."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()

    async def _mail(self, smtp: aiosmtplib.SMTP, envelope_from: str, utf8: bool) -> None:
        if utf8 and not smtp.supports_extension("smtputf8"):
            if not envelope_from.isascii():
                raise SendError(
                    f"{self.where} cannot take the sender {envelope_from}", permanent=True
                )
            utf8 = False  # the ASCII recipients still get it; the others are refused below
        path = _path(envelope_from)
        if path is None:
            raise SendError(f"{envelope_from!r} is not a mail address", permanent=True)
        options = [b"SMTPUTF8"] if utf8 else []
        # execute_command, not smtp.mail(): our stored addresses need no re-parsing (that
        # and a timer per command were a fifth of the sender's time); the command timeout
        # is the caller's asyncio.timeout, and CR/LF in an argument is still refused.
        reply = await smtp.execute_command(
            b"MAIL", b"FROM:" + path.encode("utf-8" if utf8 else "ascii"), *options, timeout=None
        )
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, envelope_from)

    async def _recipients(
        self, smtp: aiosmtplib.SMTP, recipients: list[str], utf8: bool
    ) -> dict[str, Refusal]:
        refused = {}
        encoding = "utf-8" if utf8 and smtp.supports_extension("smtputf8") else "ascii"
        for address in recipients:
            path = _path(address)
            if path is None:
                refused[address] = Refusal(553, "not a mail address")
                continue
            try:
                command = b"TO:" + path.encode(encoding)
            except UnicodeEncodeError:  # non-ASCII and the server has no SMTPUTF8
                refused[address] = Refusal(553, f"{self.where} does not take SMTPUTF8 addresses")
                continue
            reply = await smtp.execute_command(b"RCPT", command, timeout=None)
            if reply.code not in (250, 251):
                refused[address] = Refusal(reply.code, reply.message)
        return refused

    async def _session(self) -> aiosmtplib.SMTP:
        smtp = self._smtp
        if smtp is not None and smtp.is_connected:
            if time.monotonic() - self._last_used < IDLE_PROBE_SECONDS:
                return smtp
            try:
                await smtp.noop()
                return smtp
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
        self._smtp = await self._connect()
        self._last_used = time.monotonic()
        return self._smtp

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.effective_port,
            local_hostname=self.helo,
            timeout=config.timeout,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            validate_certs=True,
            cert_bundle=str(config.ca_file) if config.ca_file else None,
            username=config.username,
            password=self.password if config.username else None,
        )
        try:
            await smtp.connect()
        except ssl.SSLCertVerificationError as exc:
            raise SmtpUnavailable(
                f"the TLS certificate of SMTP server {self.where} is not trusted "
                f"({exc.verify_message}); give its CA in smtp.ca_file"
            ) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise SmtpUnavailable(
                f"SMTP server {self.where} refused the login of {config.username}: "
                f"{exc.code} {exc.message}; check smtp.username and smtp.password"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, ssl.SSLError) else exc
            raise SmtpUnavailable(f"cannot reach SMTP server {self.where}: {cause}") from None
        await _greet(smtp)
        log.debug("SMTP session open to %s", self.where)
        return smtp


# What may stand between < and > of an SMTP path: no brackets, controls or spaces, except
# spaces inside a quoted local part ("john smith"@example.com).
_PLAIN_PATH = re.compile(
    r'^(?:[^\s<>"\x00-\x1f\x7f]+|"[^"\\\x00-\x1f\x7f]*")@[^\s<>@\x00-\x1f\x7f]+$'
)


def _path(address: str) -> str | None:
    """`<address>` for MAIL FROM / RCPT TO, or None when it is not a plain mail address."""
    return f"<{address}>" if _PLAIN_PATH.match(address) else None


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError)


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    """EHLO (HELO for an old server) unless connecting already did, as smtp.mail() would."""
    if not smtp.is_ehlo_or_helo_needed:
        return
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        await smtp.helo()


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
