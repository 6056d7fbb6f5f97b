"""The daemon's /metrics endpoint (Prometheus), with the quarantine size and the automatic
mail kept read on scrape."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from maildesk.common.errors import MaildeskError
from maildesk.common.metrics import instruments

log = logging.getLogger(__name__)


class MetricsUnavailable(MaildeskError):
    """metrics_port is set but prometheus-client is not installed."""


@dataclass
class MetricsServer:
    """The running /metrics endpoint; `close()` stops it."""

    port: int
    _server: Any
    _engine: Any

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._engine.dispose()


def serve(port: int, database_url: str, address: str = "127.0.0.1") -> MetricsServer:
    """Publish the metrics on `address:port` (this machine only by default) in a thread.

    The endpoint has no authentication: open it wider (`metrics_address`) only behind
    a firewall or a proxy that checks who asks.
    """
    metrics = instruments()
    if metrics is None:
        raise MetricsUnavailable(
            "metrics_port is set but prometheus-client is missing; "
            "run `pip install 'maildesk[metrics]'` or remove metrics_port"
        )
    import prometheus_client as prom

    from maildesk.store.db import read_engine

    engine = read_engine(database_url)
    metrics.quarantine.set_function(lambda: _quarantine_size(engine))
    metrics.automatic_kept.set_function(lambda: _automatic_kept(engine))
    try:
        started = prom.start_http_server(port, addr=address, registry=metrics.registry)
    except OSError as exc:
        engine.dispose()
        reason = exc.strerror or exc
        raise MaildeskError(f"cannot serve metrics on port {port} of {address}: {reason}") from None
    server = started[0] if isinstance(started, tuple) else started
    host = f"[{address}]" if ":" in address else address
    log.info("metrics at http://%s:%d/metrics", host, port)
    return MetricsServer(server.server_port, server, engine)


def _quarantine_size(engine: Any) -> float:
    from sqlalchemy import func, select

    from maildesk.store.models import QuarantineEntry

    try:
        with engine.connect() as conn:
            query = select(func.count()).where(QuarantineEntry.status == "held")
            return float(conn.scalar(query) or 0)
    except Exception as exc:  # a scrape must not fail because the database is busy
        log.warning("metrics: cannot count quarantine: %s", exc)
        return float("nan")


def _automatic_kept(engine: Any) -> float:
    from maildesk.store.automatic import count_automatic

    try:
        with engine.connect() as conn:
            return float(count_automatic(conn))
    except Exception as exc:  # a scrape must not fail because the database is busy
        log.warning("metrics: cannot count automatic mail: %s", exc)
        return float("nan")
