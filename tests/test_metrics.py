"""Prometheus metrics, scraped over HTTP from the real endpoint after ingesting mail."""

from __future__ import annotations

import ipaddress
import math
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from maildesk.common import metrics
from maildesk.common.config_file import load_config
from maildesk.common.errors import ConfigError
from maildesk.service import metrics_server
from maildesk.service.ingest_results import SourceInfo
from tests.conftest import make_mail, write_config
from tests.daemon_helpers import maildesk
from tests.servers import free_port, wait_for_port


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


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(str(ipaddress.IPv4Address(bytes.fromhex(address)[::-1])))
    return found


def test_run_with_only_metrics_port_serves_on_loopback(tmp_path):
    port = free_port()
    config = write_config(tmp_path / "desk", extra=f"metrics_port: {port}\n")
    assert maildesk(config, "db", "upgrade").returncode == 0
    daemon = subprocess.Popen(
        [sys.executable, "-m", "maildesk", "--config", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not wait_for_port("127.0.0.1", port, timeout=0.5):
            assert daemon.poll() is None and time.monotonic() < deadline, "no metrics served"
        assert "maildesk_quarantine_size" in scrape(port)
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert f"metrics at http://127.0.0.1:{port}/metrics" in err


def test_metrics_address_opens_the_endpoint_wider(desk):
    server = metrics_server.serve(free_port(), desk.config.database_url(), address="0.0.0.0")
    try:
        assert listening_addresses(server.port) == {"0.0.0.0"}
    finally:
        server.close()


def test_metrics_address_must_be_an_ip_address(tmp_path):
    path = write_config(tmp_path, extra="metrics_port: 9464\nmetrics_address: localhost:9464\n")
    with pytest.raises(ConfigError) as problems:
        load_config(path)
    assert "metrics_address: Value error, must be an IP address" in str(problems.value)
    ok = write_config(tmp_path, extra="metrics_port: 9464\nmetrics_address: '::'\n")
    assert load_config(ok).metrics_address == "::"
