"""The time limit a parser or render child puts on each job (common.child_jobs.alarm)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from maildesk.common.child_jobs import alarm
from maildesk.common.errors import ProcessingTimeout


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_every_job_gets_its_own_time_limit_one_after_another():
    # The handler is installed once and kept; each block must still be stopped on time.
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(ProcessingTimeout, match=r"longer than 0\.05 s"), alarm(0.05):
            _spin(2)
        assert time.monotonic() - started < 1
        with alarm(0.5):
            _spin(0.01)  # a job within its limit is left alone


def test_a_finished_job_leaves_no_alarm_behind():
    with alarm(0.05):
        pass
    _spin(0.2)  # would have raised here had the timer been left running
    os.kill(os.getpid(), signal.SIGALRM)  # a stray signal between jobs is ignored
    _spin(0.05)
