"""Which ticket a message belongs to: subject token first, then In-Reply-To/References.

Pure functions: they read the parsed message and return what to look up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from maildesk.intake.message import ParsedMessage

# Reply and forward prefixes in the languages our customers write in.
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|odp|r|rif|ref|wg|fw|fwd|tr|enc|rv|res|ynt|vá|"
    r"отв|ответ|пересл|fwd?)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ThreadKeys:
    """What to look for in the store: ticket numbers from the subject, Message-IDs."""

    ticket_numbers: list[int]
    reference_ids: list[str]


@lru_cache(maxsize=64)
def token_pattern(prefix: str) -> re.Pattern[str]:
    """Regex for `[PREFIX-42]`, tolerant of case, spaces and `#` instead of `-`."""
    return re.compile(
        rf"[\[(（【]\s*{re.escape(prefix)}\s*[-#_ ]?\s*(\d{{1,12}})\s*[\])）】]",
        re.IGNORECASE,
    )


def format_token(prefix: str, number: int) -> str:
    """The canonical ticket reference, e.g. `MD-42`."""
    return f"{prefix}-{number}"


def subject_ticket_numbers(subject: str, prefix: str) -> list[int]:
    """Ticket numbers named by tokens in the subject, in order, without repeats."""
    found = [int(n) for n in token_pattern(prefix).findall(subject)]
    return list(dict.fromkeys(found))


def reference_ids(msg: ParsedMessage) -> list[str]:
    """Message-IDs this message answers: In-Reply-To first, then References newest first."""
    ids = [*msg.in_reply_to, *reversed(msg.references)]
    return list(dict.fromkeys(ids))


def thread_keys(msg: ParsedMessage, prefix: str) -> ThreadKeys:
    """Everything that could tie `msg` to an existing ticket."""
    return ThreadKeys(subject_ticket_numbers(msg.subject, prefix), reference_ids(msg))


def strip_reply_prefixes(subject: str) -> str:
    """`Re: AW: Fwd: hello` -> `hello`."""
    return _PREFIX.sub("", subject).strip()


def strip_token(subject: str, prefix: str) -> str:
    """The subject without ticket tokens and reply prefixes, for display."""
    cleaned = token_pattern(prefix).sub("", subject)
    return re.sub(r"\s{2,}", " ", strip_reply_prefixes(cleaned)).strip()
