"""Prometheus metrics: what maildesk took in and sent, and how long it took.

Recording is always on and costs a few counter increments per batch; when
`prometheus-client` is not installed (`pip install 'maildesk[metrics]'`) every call
here does nothing. `maildesk.service.metrics_server` publishes them over HTTP.

Metrics (all prefixed `maildesk_`):
  messages_ingested_total{outcome}      created, added, duplicate, quarantined
  tickets_created_total                 new tickets
  notifications_queued_total            notifications written to the outbox
  notifications_sent_total              delivered to the SMTP server
  notifications_failed_total{permanent} delivery attempts that failed
  imap_errors_total{mailbox}            IMAP connection or command failures
  automatic_mail_total{kind}            automatic mail kept apart (no ticket): bounce, complaint,
                                        delivery, delay, auto_reply, receipt, own
  quarantine_size                       messages held in quarantine (read on scrape)
  automatic_mail_kept                   automatic mail kept apart now (read on scrape)
  message_processing_seconds            parse to store, per message (histogram)
  batch_seconds                         one batch including its commit (histogram)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class _Instruments:
    registry: Any
    messages: Any
    tickets: Any
    queued: Any
    sent: Any
    failed: Any
    imap_errors: Any
    quarantine: Any
    automatic: Any
    automatic_kept: Any
    processing: Any
    batch: Any


def _create() -> _Instruments | None:
    try:
        import prometheus_client as prom
    except ImportError:
        return None
    registry = prom.CollectorRegistry()
    prom.ProcessCollector(registry=registry)  # memory, CPU, open files of the daemon
    prom.PlatformCollector(registry=registry)
    return _Instruments(
        registry=registry,
        messages=prom.Counter(
            "maildesk_messages_ingested", "Messages taken in, by outcome", ["outcome"],
            registry=registry,
        ),
        tickets=prom.Counter("maildesk_tickets_created", "Tickets opened", registry=registry),
        queued=prom.Counter(
            "maildesk_notifications_queued", "Notifications written to the outbox",
            registry=registry,
        ),
        sent=prom.Counter(
            "maildesk_notifications_sent", "Notifications delivered to the SMTP server",
            registry=registry,
        ),
        failed=prom.Counter(
            "maildesk_notifications_failed", "Notification delivery attempts that failed",
            ["permanent"], registry=registry,
        ),
        imap_errors=prom.Counter(
            "maildesk_imap_errors", "IMAP connection or command failures", ["mailbox"],
            registry=registry,
        ),
        quarantine=prom.Gauge(
            "maildesk_quarantine_size", "Messages held in quarantine", registry=registry
        ),
        automatic=prom.Counter(
            "maildesk_automatic_mail", "Automatic mail kept apart (no ticket), by kind",
            ["kind"], registry=registry,
        ),
        automatic_kept=prom.Gauge(
            "maildesk_automatic_mail_kept", "Automatic mail kept apart now", registry=registry
        ),
        processing=prom.Histogram(
            "maildesk_message_processing_seconds", "Parse to store, per message",
            buckets=LATENCY_BUCKETS, registry=registry,
        ),
        batch=prom.Histogram(
            "maildesk_batch_seconds", "One batch of messages including its commit",
            buckets=LATENCY_BUCKETS, registry=registry,
        ),
    )  # fmt: skip


class _Result(Protocol):
    outcome: str
    notifications: list[str]
    seconds: float
    automatic_kind: str


_UNSET: Any = object()
_metrics: _Instruments | None = _UNSET


def instruments() -> _Instruments | None:
    """The process's instruments, made on first use (None without prometheus-client)."""
    global _metrics
    if _metrics is _UNSET:
        _metrics = _create()
    return _metrics


def observe_batch(results: Sequence[_Result], seconds: float) -> None:
    """Count a committed batch: outcomes, new tickets, queued notifications, latencies."""
    m = instruments()
    if m is None:
        return
    for result in results:
        m.messages.labels(result.outcome).inc()
        if result.outcome == "created":
            m.tickets.inc()
        elif result.outcome == "automatic":
            m.automatic.labels(result.automatic_kind or "unknown").inc()
        if result.notifications:
            m.queued.inc(len(result.notifications))
        m.processing.observe(result.seconds)
    m.batch.observe(seconds)


def imap_error(mailbox: str) -> None:
    """Count a failed IMAP connection or command (for the IMAP daemon)."""
    if (m := instruments()) is not None:
        m.imap_errors.labels(mailbox).inc()


def notification_sent() -> None:
    """Count a notification the SMTP server accepted (for the sender)."""
    if (m := instruments()) is not None:
        m.sent.inc()


def notification_failed(permanent: bool = False) -> None:
    """Count a failed delivery attempt; permanent ones will not be retried (for the sender)."""
    if (m := instruments()) is not None:
        m.failed.labels("true" if permanent else "false").inc()
