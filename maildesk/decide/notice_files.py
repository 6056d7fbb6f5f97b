"""Which files and which HTML go with which notification (pure).

Customer -> agents: the mail's files and inline images, up to `notify.attach_max_bytes`
in all; the rest, and blocked types, are listed with how to fetch them. Agent ->
customer: the files the agent added and the inline images of what they wrote, never
the files of the notification they quoted; a blocked type or too much in all refuses
the reply. `#send-attachments`: the ticket's files by mail, in as many mails as the
limit needs. Files are named by their blob's SHA-256; the bytes stay in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from maildesk.common.domain import TicketState
from maildesk.common.notify_config import NotifyConfig
from maildesk.decide.commands import Command, is_command_line
from maildesk.decide.decision import DecideContext, FileRef, Notice
from maildesk.intake.html_text import html_to_text, sanitize_mail_html
from maildesk.intake.html_trim import trim_html_reply
from maildesk.intake.message import Address, ParsedAttachment, ParsedMessage, human_size

ATTACHMENTS_TEMPLATE = "attachments"
LIMIT, BLOCKED = "limit", "blocked"  # why a file was listed rather than attached


@dataclass
class Reply:
    """What of an agent's reply goes to the customer, or why it cannot go."""

    text: str
    html: str | None = None
    files: list[FileRef] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def file_ref(att: ParsedAttachment) -> FileRef:
    return FileRef(att.sha256, att.filename, att.content_type, att.size, att.content_id, att.inline)


def is_blocked(file: FileRef, notify: NotifyConfig) -> bool:
    """A type `notify.blocked_types` names, by name ending or content type."""
    name, ctype = file.filename.lower(), file.content_type.lower()
    return any(name.endswith(t) if t.startswith(".") else ctype == t for t in notify.blocked_types)


def mail_html(markup: str | None) -> str | None:
    """HTML fit to mail on, or None when nothing readable is left."""
    if not markup:
        return None
    cleaned = sanitize_mail_html(markup)
    return cleaned if html_to_text(cleaned).strip() or "<img" in cleaned else None


def relay_customer_files(
    notice: Notice, msg: ParsedMessage, ctx: DecideContext, *, attach: bool = True
) -> Notice:
    """An agents' copy of a customer's mail: its sanitised HTML, its files up to the
    limit (none when `attach` is false: spam), the rest listed."""
    notice.body_html = mail_html(msg.html)
    files = [file_ref(a) for a in msg.attachments]
    # Pictures the HTML shows come first: without them the mail reads badly.
    shown = [f for f in files if _shown(f, notice.body_html)]
    ordered = shown + [f for f in files if f not in shown]
    attached, listed = _within_limit(ordered, ctx.notify, attach)
    notice.attachments = attached
    if files:
        notice.extra["files"] = listing(attached, listed)
    return notice


def _shown(file: FileRef, html: str | None) -> bool:
    return bool(html and file.content_id and f"cid:{file.content_id}" in html)


def _within_limit(
    files: Sequence[FileRef], notify: NotifyConfig, attach: bool = True
) -> tuple[list[FileRef], list[tuple[FileRef, str]]]:
    attached, listed, total = [], [], 0
    for file in files:
        if is_blocked(file, notify):
            listed.append((file, BLOCKED))
        elif attach and total + file.size <= notify.attach_max_bytes:
            attached.append(file)
            total += file.size
        else:
            listed.append((file, LIMIT))
    return attached, listed


def listing(attached: Sequence[FileRef], listed: Sequence[tuple[FileRef, str]]) -> dict[str, Any]:
    """The `files` template variable: what is attached, and what is not and why."""
    return {
        "attached": [{"name": f.filename, "size": human_size(f.size)} for f in attached],
        "withheld": [
            {"name": f.filename, "size": human_size(f.size), "reason": why} for f, why in listed
        ],
    }


def agent_reply(
    msg: ParsedMessage, ticket: TicketState, ctx: DecideContext, text: str, *, plain: bool
) -> Reply:
    """The text, HTML and files of an agent's reply as the customer gets them. `plain`:
    send text only (a #kb article went into the text)."""
    html = None if plain or not msg.html else mail_html(trim_html_reply(msg.html, is_command_line))
    if html is not None:
        derived = html_to_text(html, links=True)
        text, html = (derived, html) if derived.strip() else (text, None)
    reply = Reply(text, html)
    quoted = _ticket_shas(ticket, ctx) if msg.attachments else set()
    for att in msg.attachments:
        file = file_ref(att)
        if file.sha256 in quoted:
            continue  # the notification's own files, quoted back
        in_mail = bool(msg.html and file.content_id and f"cid:{file.content_id}" in msg.html)
        if in_mail and not _shown(file, html):
            continue  # a picture of the quoted history or the signature
        reply.files.append(file)
    reply.errors = _refusals(reply.files, msg, ctx.notify)
    return reply


def _ticket_shas(ticket: TicketState, ctx: DecideContext) -> set[str]:
    return {f.sha256 for f in ctx.ticket_files(ticket.id)} if ctx.ticket_files else set()


def _refusals(files: Sequence[FileRef], msg: ParsedMessage, notify: NotifyConfig) -> list[str]:
    errors = [
        f"attachment {f.filename!r}: files of this type are not sent to customers "
        "(notify.blocked_types); send a link to it instead"
        for f in files
        if is_blocked(f, notify)
    ]
    errors += [
        f"attachment {d.filename!r} ({human_size(d.size)}) was not kept: {d.reason}"
        for d in msg.dropped
    ]
    total = sum(f.size for f in files)
    if total > notify.attach_max_bytes:
        errors.append(
            f"the attachments come to {human_size(total)}, over the "
            f"{human_size(notify.attach_max_bytes)} a mail to the customer may carry "
            "(notify.attach_max_bytes); send big files as a link"
        )
    return errors


def attachment_notices(
    commands: Sequence[Command], me: Address, ticket: TicketState, ctx: DecideContext
) -> tuple[list[Notice], list[str]]:
    """`#send-attachments [NAME]`: the ticket's files to the agent, each mail within the
    limit (a file over it goes alone); blocked types are only listed. (notices, errors)"""
    if not commands:
        return [], []
    stored = list(ctx.ticket_files(ticket.id)) if ctx.ticket_files else []
    chosen, errors = _chosen(commands, stored, ticket)
    if errors:
        return [], errors
    sendable = [f for f in chosen if not is_blocked(f, ctx.notify)]
    listed = [(f, BLOCKED) for f in chosen if is_blocked(f, ctx.notify)]
    groups = _groups(sendable, ctx.notify.attach_max_bytes) or [[]]
    notices = []
    for number, group in enumerate(groups, 1):
        extra = {"files": listing(group, listed if number == 1 else []), "part": number}
        extra["parts"] = len(groups)
        notices.append(
            Notice(ATTACHMENTS_TEMPLATE, [me], "agents", from_agent=me, attachments=group,
                   extra=extra)
        )  # fmt: skip
    return notices, []


def _chosen(
    commands: Sequence[Command], stored: list[FileRef], ticket: TicketState
) -> tuple[list[FileRef], list[str]]:
    if not stored:
        return [], [f"'{commands[0].line}': {ticket.ref} has no attachments"]
    chosen: dict[tuple[str, str], FileRef] = {}
    errors = []
    for command in commands:
        name = command.argument.strip().strip('"')
        found = [f for f in stored if not name or f.filename.lower() == name.lower()]
        if not found:
            names = ", ".join(sorted({f.filename for f in stored}))
            errors.append(f"'{command.line}': {ticket.ref} has no attachment {name!r} ({names})")
        for file in found:
            chosen.setdefault((file.sha256, file.filename), file)
    return list(chosen.values()), errors


def _groups(files: Sequence[FileRef], limit: int) -> list[list[FileRef]]:
    groups: list[list[FileRef]] = []
    size = 0
    for file in files:
        if not groups or (groups[-1] and size + file.size > limit):
            groups.append([])
            size = 0
        groups[-1].append(file)
        size += file.size
    return groups
