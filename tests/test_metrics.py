"""Prometheus metrics, scraped over HTTP from the real endpoint after ingesting mail."""

from __future__ import annotations

import math
import re
import urllib.request

import pytest

from maildesk.common import metrics
from maildesk.service import metrics_server
from maildesk.service.ingest_results import SourceInfo
from tests.conftest import make_mail
from tests.servers import free_port


def scrape(port: int) -> dict[str, float]:
    """Every sample on /metrics as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.fixture
def served(desk):
    server = metrics_server.serve(free_port(), desk.config.database_url(), address="127.0.0.1")
    yield server
    server.close()


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def test_ingest_shows_up_in_the_metrics(desk, served):
    before = scrape(served.port)
    results = desk.pipeline.process_batch(
        [
            (
                make_mail(subject="Printer on fire", message_id="<m1@example.org>"),
                SourceInfo("support", 1, 1),
            ),
            (
                make_mail(subject="Re: [MD-1] Printer on fire", message_id="<m2@example.org>"),
                SourceInfo("support", 1, 2),
            ),
            (
                make_mail(subject="Printer on fire", message_id="<m1@example.org>"),
                SourceInfo("support", 1, 3),
            ),
            (b"\x00\x01 not mail at all", SourceInfo("support", 1, 4)),
        ]
    )
    assert [r.outcome for r in results] == ["created", "added", "duplicate", "quarantined"]
    metrics.imap_error("support")
    metrics.notification_sent()
    metrics.notification_failed(permanent=True)
    after = scrape(served.port)

    for outcome in ("created", "added", "duplicate", "quarantined"):
        assert delta(before, after, f'maildesk_messages_ingested_total{{outcome="{outcome}"}}') == 1
    assert delta(before, after, "maildesk_tickets_created_total") == 1
    queued = sum(len(r.notifications) for r in results)
    assert queued >= 1  # at least the acknowledgement
    assert delta(before, after, "maildesk_notifications_queued_total") == queued
    assert delta(before, after, 'maildesk_imap_errors_total{mailbox="support"}') == 1
    assert delta(before, after, "maildesk_notifications_sent_total") == 1
    assert delta(before, after, 'maildesk_notifications_failed_total{permanent="true"}') == 1
    assert after["maildesk_quarantine_size"] == 1  # read from the database on each scrape
    assert delta(before, after, "maildesk_message_processing_seconds_count") == 4
    assert delta(before, after, "maildesk_batch_seconds_count") == 1
    assert delta(before, after, "maildesk_batch_seconds_sum") > 0
    assert after["process_resident_memory_bytes"] > 0


def test_latency_histogram_has_buckets(desk, served):
    desk.pipeline.process_one(make_mail(subject="One more"))
    samples = scrape(served.port)
    buckets = {
        k: v
        for k, v in samples.items()
        if k.startswith("maildesk_message_processing_seconds_bucket")
    }
    assert len(buckets) == len(metrics.LATENCY_BUCKETS) + 1  # and +Inf
    assert (
        samples['maildesk_message_processing_seconds_bucket{le="+Inf"}']
        == samples["maildesk_message_processing_seconds_count"]
    )


def test_quarantine_size_is_unknown_when_the_database_is_gone(tmp_path):
    server = metrics_server.serve(
        free_port(), f"sqlite:///{tmp_path}/missing/maildesk.db", address="127.0.0.1"
    )
    try:
        assert math.isnan(scrape(server.port)["maildesk_quarantine_size"])
    finally:
        server.close()


def test_port_in_use_is_a_clear_error(desk, served):
    with pytest.raises(
        metrics_server.MaildeskError, match=re.escape(f"cannot serve metrics on port {served.port}")
    ):
        metrics_server.serve(served.port, desk.config.database_url(), address="127.0.0.1")
