"""The spool `maildesk ingest -` writes into, so an MTA's pipe costs a file write.

A Maildir: a message is written to tmp/, fsynced, renamed into new/, and new/ is
fsynced; once the writer exits 0 the message survives a crash or power loss. The
daemon drains new/ into cur/ (`maildesk.service.spool_ingest`). Files are 0600,
folders 0700.

An MTA runs the writer once per message, so its start-up is the whole cost: this
module imports only the standard library and reads maildesk.yaml's `spool:` line
itself instead of loading the config (PyYAML alone takes ~50 ms to import). The
folder is `spool:` (relative to maildesk.yaml's folder), else `spool` beside it;
`maildesk check` verifies that this reading agrees with the full config's.
"""

from __future__ import annotations

import os
import time

from maildesk.common.config_location import config_file, config_named

TYPE_CHECKING = False  # no typing or pathlib: each import costs every piped message
if TYPE_CHECKING:
    from typing import BinaryIO

    StrPath = str | os.PathLike[str]

DEFAULT_FOLDER = "spool"
# The queue given with `ingest --queue Q -` travels in the file name, after this mark
# (Maildir names carry ",KEY=value" fields, as Dovecot's ",S=size").
QUEUE_MARK = ",Q="
# A tmp/ file older than this was left by a writer that failed (and so exited non-zero:
# the MTA kept the message); the Maildir convention is to delete it after 36 hours.
STALE_TMP_SECONDS = 36 * 3600
_CHUNK = 1 << 20
_UNQUOTED_START = set("{[&*!|>%@`#")


class SpoolError(Exception):
    """The message could not be spooled: the MTA should keep it and retry (exit 75)."""


def spool_folder(config_arg: StrPath | None) -> str:
    """The spool folder (absolute) of the maildesk.yaml that --config (or
    $MAILDESK_CONFIG, or ./maildesk.yaml) names, read without loading the config."""
    path = config_file(config_arg)
    try:
        with open(path, encoding="utf-8-sig") as fh:  # as YAML, a BOM is no part of it
            text = fh.read()
    except FileNotFoundError:
        if config_named(config_arg):
            raise SpoolError(f"{path} not found") from None
        text = ""  # built-in defaults, as every command uses then
    except (OSError, UnicodeDecodeError) as exc:
        raise SpoolError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    folder = read_spool_key(text, path) or DEFAULT_FOLDER
    # realpath, as the daemon resolves the config's folder: through a symlinked
    # maildesk.yaml both must name the same spool, or what the MTA hands over waits for ever.
    return os.path.join(os.path.dirname(os.path.realpath(path)), folder)


def read_spool_key(text: str, where: str) -> str | None:
    """The top-level `spool:` value of maildesk.yaml's text: a path on one line, plain or
    quoted without escapes; None when there is no such key."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("spool:"):
            value = _one_line_scalar(line.removeprefix("spool:"))
            if value is None:
                raise SpoolError(
                    f"{where}:{number}: write spool: as a folder path on the same line, "
                    "plain or in quotes without escapes (e.g. spool: /var/spool/maildesk)"
                )
            return value
    return None


def _one_line_scalar(raw: str) -> str | None:
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        end = raw.find(raw[0], 1)
        rest = raw[end + 1 :].strip() if end > 0 else "?"
        value = raw[1:end]
        if (rest and not rest.startswith("#")) or "\\" in value or not value:
            return None
        return value
    for comment in (" #", "\t#"):
        raw = raw.split(comment, 1)[0]
    raw = raw.strip()
    if not raw or raw[0] in _UNQUOTED_START:
        return None
    return raw


def spool_message(folder: StrPath, stream: BinaryIO, queue: str | None = None) -> str:
    """Write one message from `stream` durably into `folder`/new/; returns its file name.

    Raises SpoolError (saying why) when it cannot; nothing is left behind then.
    """
    name = unique_name(queue)
    temp = os.path.join(folder, "tmp", name)
    try:
        fd = _create(folder, temp)
        try:
            _copy(stream, fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, os.path.join(folder, "new", name))
        _fsync_folder(os.path.join(folder, "new"))
    except BaseException as exc:
        _discard(temp)
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            raise SpoolError(f"cannot write to the spool {folder}: {reason}") from None
        raise
    return name


def make_folders(folder: StrPath) -> None:
    """Create the spool folder with tmp/, new/ and cur/ (0700) where missing; not its
    parents, so a mistyped path fails instead of growing a tree nobody drains."""
    created = False
    for path in (folder, *(os.path.join(folder, sub) for sub in ("tmp", "new", "cur"))):
        try:
            os.mkdir(path, 0o700)
            created = True
        except FileExistsError:
            pass
    if created:  # the new entries must survive a crash as the message will
        _fsync_folder(os.path.dirname(os.path.abspath(folder)))
        _fsync_folder(folder)


def unique_name(queue: str | None = None) -> str:
    """A Maildir file name: time (zero-padded microseconds, so names sort by time),
    process, randomness and host; then the queue, if any."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    host = os.uname().nodename
    for char, escaped in (("/", r"\057"), (":", r"\072"), (",", r"\054")):
        host = host.replace(char, escaped)
    name = f"{seconds}.M{nanos // 1000:06d}P{os.getpid()}R{os.urandom(4).hex()}.{host}"
    if queue:
        from urllib.parse import quote

        name += QUEUE_MARK + quote(queue, safe="")
    return name


def queue_of(name: str) -> str | None:
    """The queue a spooled file's name carries (see unique_name), or None."""
    _, mark, quoted = name.partition(QUEUE_MARK)
    if not mark:
        return None
    from urllib.parse import unquote

    return unquote(quoted) or None


def _create(folder: StrPath, temp: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(temp, flags, 0o600)
    except FileNotFoundError:  # the first message: make the folders
        make_folders(folder)
        return os.open(temp, flags, 0o600)


def _copy(stream: BinaryIO, fd: int) -> None:
    # In chunks: a big message never sits in memory whole.
    while chunk := stream.read(_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def _discard(temp: str) -> None:
    # Not contextlib.suppress: contextlib would be one more import for every message.
    try:  # noqa: SIM105
        os.unlink(temp)
    except OSError:  # gone already, or a later drain removes it as stale
        pass


def _fsync_folder(path: StrPath) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
