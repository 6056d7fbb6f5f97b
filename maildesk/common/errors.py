"""The exceptions maildesk raises; each message says what to do about it."""

from __future__ import annotations

from dataclasses import dataclass


class MaildeskError(Exception):
    """Base class for every error maildesk reports to a user."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a file: where it is and how to fix it."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class FileProblems(MaildeskError):
    """A file (config or rules) has one or more problems; all are listed."""

    def __init__(self, what: str, problems: list[Problem]):
        self.what = what
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{what} has {len(problems)} problem(s):\n{lines}")


class ConfigError(FileProblems):
    """maildesk.yaml is missing, unreadable or invalid."""


class RulesError(FileProblems):
    """rules.yaml is invalid; the daemon keeps its last good rules."""


class SecretError(MaildeskError):
    """A secret named in the config could not be read."""


class StageError(MaildeskError):
    """A message failed at one pipeline stage; the stage goes into its quarantine entry."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


class ParseError(MaildeskError):
    """A message could not be parsed at all."""


class ProcessingTimeout(MaildeskError):
    """Processing one message took longer than the configured limit."""


class SkeletonTooLarge(MaildeskError):
    """The parts of a big message that cannot be cut out (headers, text, preamble) are
    too big to parse."""


class SchemaOutOfDate(MaildeskError):
    """The database schema is older than this maildesk; run `maildesk db upgrade`."""


class TemporaryFailure(MaildeskError):
    """A failure worth retrying later (database locked, server unreachable)."""


class NotFound(MaildeskError):
    """A ticket, quarantine entry or outbox entry does not exist."""


class SourceError(MaildeskError):
    """A mail source (IMAP, Maildir) failed; the message names the mailbox."""


class MailboxAuthError(SourceError):
    """The IMAP server refused the mailbox's credentials."""


class LeaseLost(MaildeskError):
    """Another daemon owns the mailbox (or job) now; stop working on it."""


class SendError(MaildeskError):
    """Sending a notification failed."""

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


class SmtpUnavailable(SendError):
    """No SMTP session could be opened (refused, TLS, login): no message was tried."""

    def __init__(self, message: str):
        super().__init__(message, permanent=False)
