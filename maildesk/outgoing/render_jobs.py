"""Rendering queued notifications for the sender, in a child process by default.

Rendering (jinja2 and MIME) is pure Python. Done in the daemon's process it holds the
GIL the sender's event loop needs between SMTP replies: measured, a quarter of the
sender's time per notification. A child renders a whole claimed batch in one round
trip and gives each job a time limit (`limits.processing_seconds`), so an admin
template that never finishes fails its notifications, visibly, instead of the sender.
If no child can be started, rendering falls back to this process.

What a notification needs is fixed when it is queued (`RenderJob`); `render_notice`
turns that into the exact bytes that every retry resends. Its files are named by
SHA-256 in the row; the sender gives the child their bytes or the path of a file that
holds them (`file_sources`), and rows with files are rendered one at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from maildesk.common.child_jobs import run_one
from maildesk.common.children import ChildPool, ChildUnavailable, shared
from maildesk.common.domain import AUTO_REPLIED
from maildesk.common.thread_index import decode_root
from maildesk.intake.message import Address
from maildesk.outgoing.compose import Envelope, compose
from maildesk.outgoing.file_parts import FilePart
from maildesk.outgoing.header_text import clean_text

if TYPE_CHECKING:  # the render process imports neither the database layer nor pydantic
    from sqlalchemy import Row

    from maildesk.common.config import Config, TicketsConfig
    from maildesk.outgoing.templates import Renderer
    from maildesk.store.blobs import BlobStore
    from maildesk.store.models import OutboxEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderJob:
    """What rendering a queued notification takes, all of it fixed when it was queued."""

    template: str
    language: str
    context: dict[str, Any]
    headers: dict[str, Any]
    message_id: str
    created_at: datetime
    automatic: bool
    files: tuple[FilePart, ...] = ()  # filled in by the sender (file_sources)

    @classmethod
    def of(cls, entry: OutboxEntry | Row[Any]) -> RenderJob:
        """From an outbox row (an ORM object or a plain row with the same columns)."""
        context = entry.context
        if "body" not in context and entry.stored_body is not None:
            context = {**context, "body": entry.stored_body}  # kept once, in its message
        return cls(
            entry.template,
            entry.language,
            context,
            entry.headers,
            entry.message_id,
            entry.created_at,
            entry.automatic,
        )


@dataclass(frozen=True)
class RenderedNotice:
    raw: bytes
    subject: str
    problem: str | None = None  # an admin template failed and the shipped one was used


@dataclass(frozen=True)
class DeskSender:
    """What rendering reads of `tickets:`, as plain values: the render child is sent
    these and needs neither pydantic nor the config models (about 11 MB less)."""

    support_name: str
    support_address: str
    id_domain: str
    language: str

    @classmethod
    def of(cls, tickets: TicketsConfig) -> DeskSender:
        t = tickets
        return cls(t.support_name, t.support_address, t.id_domain, t.language)


def render_notice(job: RenderJob, renderer: Renderer, tickets: DeskSender) -> RenderedNotice:
    """The RFC 5322 bytes and subject of a queued notification (logs nothing: the
    caller reports `problem`, as it may run in a child process)."""
    rendered, problem = renderer.render_or_fall_back(job.template, job.language, job.context)
    ref = str(job.context.get("ticket", {}).get("ref", ""))
    subject = clean_text(rendered.subject)  # as it goes out (and is listed in the outbox)
    if ref and f"[{ref}]".lower() not in subject.lower():
        subject = f"[{ref}] {subject}"  # the token is how replies find the ticket
    headers = job.headers
    support = Address(tickets.support_name, tickets.support_address)
    on_behalf = headers.get("on_behalf_of")
    sender = support
    if on_behalf:
        sender = Address(f"{on_behalf[0]} via {tickets.support_name}", tickets.support_address)
    envelope = Envelope(
        sender=sender,
        to=[Address(n, a) for n, a in headers.get("to", [])],
        cc=[Address(n, a) for n, a in headers.get("cc", [])],
        reply_to=Address(tickets.support_name, headers["reply_to"])
        if headers.get("reply_to")
        else support,
        subject=subject,
        message_id=job.message_id,
        in_reply_to=headers.get("in_reply_to"),
        references=list(headers.get("references", [])),
        date=job.created_at,
        auto_submitted=headers.get("auto_submitted", AUTO_REPLIED if job.automatic else None),
        ticket_ref=ref,
        loop_token=tickets.id_domain,
        thread_root=decode_root(headers.get("thread_root")),
        thread_depth=int(headers.get("thread_depth", 0)),
        language=job.language,
    )
    return RenderedNotice(compose(envelope, rendered, job.files), subject, problem)


# A rendered notification, or why it could not be rendered.
Outcome = RenderedNotice | str


@dataclass(frozen=True)
class RenderSettings:
    """The part of the configuration rendering reads (what a child is sent)."""

    templates: Path | None
    tickets: DeskSender
    timeout: float

    @classmethod
    def of(cls, config: Config) -> RenderSettings:
        return cls(
            config.templates, DeskSender.of(config.tickets), config.limits.processing_seconds
        )

    def renderer(self) -> Renderer:
        from maildesk.outgoing.templates import Renderer  # Jinja: the render child's import

        return Renderer(self.templates, default_language=self.tickets.language)


class NoticeRenderer(Protocol):
    def start(self) -> None:
        """Get ready ahead of the first notification (may block for a moment)."""
        ...

    def render_many(self, jobs: list[RenderJob]) -> list[Outcome]:
        """Each job's notification, or the reason it cannot be rendered, in order."""
        ...


class InlineRenderer:
    """Renders in this process (the time limit holds only on the main thread)."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.renderer = settings.renderer()

    def start(self) -> None:
        pass

    def render_many(self, jobs: list[RenderJob]) -> list[Outcome]:
        def render(job: RenderJob) -> RenderedNotice:
            return render_notice(job, self.renderer, self.settings.tickets)

        # Errors become messages as in the child (a broken template fails its own only).
        results = [run_one(render, job, self.settings.timeout) for job in jobs]
        return reported([value for _status, value in results])


class ChildRenderer:
    """Renders in a child process shared by every sender in this process."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self._inline: InlineRenderer | None = None

    def start(self) -> None:
        """Start the child now, so its imports never delay the first notification."""
        if self._inline is None:
            try:
                shared_pool().prestart(1)
            except ChildUnavailable as exc:
                self._fall_back(exc)

    def render_many(self, jobs: list[RenderJob]) -> list[Outcome]:
        if not jobs:
            return []
        if self._inline is None:
            try:
                pairs = [(self.settings, job) for job in jobs]
                results = shared_pool().run(pairs, self.settings.timeout)
                # A result is ("ok", RenderedNotice), or ("error"/"timeout", why not).
                return reported([value for _status, value in results])
            except ChildUnavailable as exc:
                self._fall_back(exc)
        assert self._inline is not None
        return self._inline.render_many(jobs)

    def _fall_back(self, exc: ChildUnavailable) -> None:
        log.warning("%s; rendering notifications in the daemon's process", exc)
        self._inline = InlineRenderer(self.settings)


def reported(outcomes: list[Outcome]) -> list[Outcome]:
    """Log the admin templates that failed and were replaced by the shipped ones."""
    for outcome in outcomes:
        if isinstance(outcome, RenderedNotice) and outcome.problem:
            log.error("%s", outcome.problem)
    return outcomes


def prepare_child() -> None:
    """Runs in a new render child before it says it is ready (maildesk.common.child_jobs
    calls it): Jinja, which the daemon's own process does without, is imported here
    rather than in the first job, against that job's time limit."""
    import maildesk.outgoing.templates  # noqa: F401


# In the child: Renderers kept for reuse (jinja2 re-reads a template file that changed).
_renderers: dict[tuple[Path | None, str], Renderer] = {}


def _render_job(job: tuple[RenderSettings, RenderJob]) -> RenderedNotice:
    """Runs in the child: one notification (errors become the job's error message)."""
    settings, notice = job
    key = (settings.templates, settings.tickets.language)
    renderer = _renderers.get(key)
    if renderer is None:
        renderer = _renderers[key] = settings.renderer()
    return render_notice(notice, renderer, settings.tickets)


def shared_pool() -> ChildPool:
    """The process-wide rendering child (started on first use)."""
    return shared(
        "renderer",
        lambda: ChildPool("maildesk.outgoing.render_jobs:_render_job", "renderer", max_idle=1),
    )


def render_entry(
    entry: OutboxEntry, renderer: Renderer, config: Config, blobs: BlobStore | None = None
) -> bytes:
    """The RFC 5322 bytes of an outbox entry; sets entry.raw and entry.subject once.
    `blobs` holds the files it carries (needed only when it carries some)."""
    if entry.raw is None:
        from maildesk.outgoing.file_sources import file_parts_for, remove

        job = RenderJob.of(entry)
        files, spooled = file_parts_for(entry.headers.get("attachments") or [], blobs)
        try:
            sender = DeskSender.of(config.tickets)
            rendered = render_notice(replace(job, files=tuple(files)), renderer, sender)
        finally:
            remove(spooled)
        reported([rendered])  # an admin template replaced by the shipped one is logged
        entry.raw, entry.subject = rendered.raw, rendered.subject
    return entry.raw
