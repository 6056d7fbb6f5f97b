"""`maildesk [--config FILE] ingest [--queue Q] -` without click: what an MTA runs per message.

Only that exact command line is handled here, with the standard library and
`maildesk.intake.spool`; any other (options like -v or --now, files, --help) goes to
the click group, whose `ingest -` spools the same way. Postfix semantics: exit 0 once
the message is durably in the spool, 75 (EX_TEMPFAIL) when it is not, so the MTA
keeps it and retries.
"""

from __future__ import annotations

import contextlib
import sys

TYPE_CHECKING = False  # typing itself costs each piped message a few milliseconds
if TYPE_CHECKING:
    from os import PathLike
    from typing import BinaryIO, TextIO

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


def fast_ingest(argv: list[str]) -> int | None:
    """Spool stdin when `argv` is exactly an MTA's `ingest -`; the exit code, or None
    when `argv` is anything else."""
    parsed = parse_pipe_command(argv)
    if parsed is None:
        return None
    config, queue = parsed
    return spool_stdin(config, queue, sys.stdin.buffer, sys.stdout, sys.stderr)


def spool_stdin(
    config: str | PathLike[str] | None,
    queue: str | None,
    stdin: BinaryIO,
    out: TextIO,
    err: TextIO,
) -> int:
    """Write the message on `stdin` into the spool of `config`; 0, or 75 with the reason."""
    from maildesk.intake.spool import SpoolError, spool_folder, spool_message

    try:
        name = spool_message(spool_folder(config), stdin, queue)
    except SpoolError as exc:
        err.write(f"error: {exc}; the message was not stored, try again later\n")
        return EX_TEMPFAIL
    # stdout closed (None when it was closed at start-up): the message is stored, and
    # that is what the exit code tells the MTA.
    with contextlib.suppress(AttributeError, OSError, ValueError):
        out.write(f"-: spooled {name}\n")
        out.flush()
    return 0


def parse_pipe_command(argv: list[str]) -> tuple[str | None, str | None] | None:
    """(config, queue) when `argv` is `[--config FILE] ingest [--queue Q] -`, else None."""
    found: dict[str, str] = {}
    rest = _options(argv, "--config", found)
    if rest[:1] != ["ingest"]:
        return None
    if _options(rest[1:], "--queue", found) != ["-"]:
        return None
    return found.get("--config"), found.get("--queue")


def _options(args: list[str], name: str, found: dict[str, str]) -> list[str]:
    """Take `name VALUE` or `name=VALUE` off the front of `args` (once); the rest."""
    key, equals, value = args[0].partition("=") if args else ("", "", "")
    if key != name:
        return args
    if equals:
        found[name] = value
        return args[1:]
    if len(args) < 2:
        return args
    found[name] = args[1]
    return args[2:]
