"""The two things `imap` needs that imapclient has no public way to give.

1. The untagged responses imaplib collects while other commands run (an EXISTS for
   mail that arrived during a FETCH): imapclient keeps its imaplib connection in the
   private `_imap`. `imaplib_of()` is the only place that touches it.
2. Responses already read into imaplib's buffer when IDLE starts, which
   `idle_check()` cannot see (it waits for the socket, and the bytes are past it).

Everything else goes through imapclient's public API. pyproject.toml pins imapclient
to the versions this was tested with (3.0 to 4.1).
"""

from __future__ import annotations

import imaplib
import ssl
from typing import Any

from imapclient import IMAPClient
from imapclient.response_parser import parse_response


def imaplib_of(client: IMAPClient) -> imaplib.IMAP4:
    """The imaplib connection under `client`."""
    imap: imaplib.IMAP4 = client._imap
    return imap


def buffered_responses(client: IMAPClient) -> list[tuple[Any, ...]]:
    """IDLE responses imaplib already read into its buffer, which idle_check() cannot see.

    idle_check() waits for the socket to become readable; a response that arrived in the
    same packet as IDLE's "+ idling" already sits in imaplib's buffer and would wait there
    until the next packet.
    """
    imap = imaplib_of(client)
    sock = client.socket()
    timeout = sock.gettimeout()
    responses = []
    sock.setblocking(False)
    try:
        while imap.file.peek(1)[:1]:
            responses.append(untagged(imap.readline()))
    except (BlockingIOError, ssl.SSLWantReadError):
        pass
    finally:
        sock.settimeout(timeout)  # blocking again, with the read timeout it had
    return responses


def untagged(line: bytes) -> tuple[Any, ...]:
    """One untagged response line ("* 5 EXISTS"), parsed as imapclient's idle_check does."""
    if not line.endswith(b"\r\n"):
        raise imaplib.IMAP4.abort(f"socket error: unterminated line: {line[:100]!r}")
    text = line[:-2]
    if not text.startswith(b"* "):
        return (text,)
    text = text[2:]
    if text.startswith((b"OK ", b"NO ")):
        return tuple(text.split(b" ", 1))
    return tuple(parse_response([text]))
