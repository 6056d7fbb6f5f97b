"""Rendering claimed notifications once, before their first attempt: the bytes are kept
in the row, so every retry resends exactly them (same Message-ID, same text)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from maildesk.common.redact import redact
from maildesk.outgoing.file_sources import MissingFile, file_parts_for, remove
from maildesk.outgoing.render_jobs import NoticeRenderer, RenderedNotice, RenderJob
from maildesk.store.outbox_queue import KEEP_RAW_BYTES, OutboxQueue

if TYPE_CHECKING:
    from sqlalchemy import Row

    from maildesk.store.blobs import BlobStore

log = logging.getLogger(__name__)


def render_claimed(
    rows: list[Row[Any]],
    renderer: NoticeRenderer | None,
    blobs: BlobStore | None,
    queue: OutboxQueue,
) -> dict[int, bytes | None]:
    """Render claimed rows once and keep the bytes (retries resend them); a row that
    cannot be rendered fails, visibly, and the others go on. {id: bytes, or None for
    a big message, read again when it is sent}. Rows with files go one at a time."""
    plain = [row for row in rows if not row.headers.get("attachments")]
    rendered: dict[int, bytes | None] = {}
    if plain:
        jobs: list[RenderJob | str] = [RenderJob.of(row) for row in plain]
        rendered.update(_render_jobs(plain, jobs, renderer, queue))
    for row in rows:
        if row.headers.get("attachments"):
            done = _render_with_files(row, renderer, blobs, queue)
            rendered.update({k: v if len(v) <= KEEP_RAW_BYTES else None for k, v in done.items()})
    return rendered


def _render_with_files(
    row: Row[Any], renderer: NoticeRenderer | None, blobs: BlobStore | None, queue: OutboxQueue
) -> dict[int, bytes]:
    try:
        files, spooled = file_parts_for(row.headers["attachments"], blobs)
    except (MissingFile, OSError) as exc:
        return _render_jobs([row], [str(exc)], renderer, queue)
    try:
        job = replace(RenderJob.of(row), files=tuple(files))
        return _render_jobs([row], [job], renderer, queue)
    finally:
        remove(spooled)


def _render_jobs(
    rows: list[Row[Any]],
    jobs: list[RenderJob | str],
    renderer: NoticeRenderer | None,
    queue: OutboxQueue,
) -> dict[int, bytes]:
    """Render `jobs` (a str: why that row cannot be) and store the outcomes."""
    todo = [job for job in jobs if isinstance(job, RenderJob)]
    if renderer is None:
        results: list[RenderedNotice | str] = ["no renderer configured"] * len(todo)
    else:
        results = renderer.render_many(todo) if todo else []
    rendered = iter(results)
    outcomes = [next(rendered) if isinstance(job, RenderJob) else job for job in jobs]
    done, failed = [], []
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, RenderedNotice):
            done.append({"id": row.id, "raw": outcome.raw, "subject": outcome.subject})
            continue
        log.error("notification %s to %s cannot be rendered: %s", row.id, row.to_addr, outcome)
        error = redact(f"cannot render template {row.template}: {outcome}")[:2000]
        failed.append({"id": row.id, "attempts": row.attempts + 1, "last_error": error})
    queue.store_rendered(done, failed)
    return {d["id"]: d["raw"] for d in done}
