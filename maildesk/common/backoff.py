"""Exponential backoff with jitter: how long to wait before trying again.

One rule for every retry in maildesk (a mailbox reconnecting, the SMTP server
coming back, a notification's next attempt): the delay doubles from `base_seconds`
up to `cap_seconds`, and half of it is random ("equal jitter") so that daemons and
notifications that failed together do not all retry at the same moment.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Backoff:
    """Delays of base, 2*base, 4*base ... up to cap, each between 50% and 100% of that."""

    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    min_seconds: float = 0.0

    def seconds(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait after failed try number `attempt` (1 for the first failure)."""
        full = min(self.cap_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        return max(self.min_seconds, full / 2 + rand() * full / 2)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> timedelta:
        """`seconds` as a timedelta, for due times."""
        return timedelta(seconds=self.seconds(attempt, rand))
