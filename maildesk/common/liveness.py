"""Whether this daemon's heartbeat still holds, as far as this process can tell.

Other daemons take a daemon's claimed notifications as soon as its heartbeat lapses
(store/leases.py). A daemon that cannot renew it (the database unreachable, a long
SQLite lock) must therefore stop sending what it claimed before it lapses, or the
same notifications would go out twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Liveness:
    """When the heartbeat was last renewed (the balancer says), and whether it still holds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: float | None = None  # None: no heartbeat yet (nothing to lapse)
        self._margin = 0.0

    def renewed(self, started: float, lasts: float) -> None:
        """A renewal that began at `started` (this clock) lasts `lasts` seconds from then."""
        self._until = started + lasts
        self._margin = lasts / 3  # a send in hand may still take a while

    def holds(self) -> bool:
        """The heartbeat holds for a while yet (or there is none to lapse)."""
        return self._until is None or self.clock() < self._until - self._margin
