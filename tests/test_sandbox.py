"""The sandboxed parser: a chunk of messages per round trip, each with its own time limit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from maildesk.common.errors import ParseError, ProcessingTimeout
from maildesk.intake.message import ParsedMessage, ParseLimits
from maildesk.intake.parser_children import SandboxedParser
from tests.conftest import make_mail
from tests.corpus_cases import nested, tiny_parts


@pytest.fixture
def parser():
    parser = SandboxedParser()
    yield parser
    parser.close()


def _subjects(results):
    return [r.subject if isinstance(r, ParsedMessage) else type(r).__name__ for r in results]


def test_a_slow_message_in_a_chunk_times_out_alone(parser):
    chunk = [
        make_mail(subject="First"),
        nested(90, 60_000, "slow-in-chunk"),  # over half a second of work
        make_mail(subject="Third"),
    ]
    started = time.monotonic()
    results = parser.parse_many(chunk, ParseLimits(), timeout=0.3)
    assert _subjects(results) == ["First", "ProcessingTimeout", "Third"]
    assert str(results[1]) == "processing took longer than 0.3 s"
    assert time.monotonic() - started < 5
    # The child stopped the slow parse itself and went on: no child was killed.
    assert parser.started == 1 and all(w.alive() for w in parser.idle)


def test_a_child_dying_mid_chunk_fails_only_the_message_it_was_on(parser, monkeypatch):
    workers = []
    acquire = parser._acquire

    def recording():
        worker = acquire()
        workers.append(worker)
        return worker

    monkeypatch.setattr(parser, "_acquire", recording)
    chunk = [
        make_mail(subject="First"),
        nested(90, 600_000, "crash-in-chunk"),  # ~5 s of work: killed while on this one
        make_mail(subject="Third"),
        make_mail(subject="Fourth"),
    ]

    def kill_first_child():
        while not workers:
            time.sleep(0.01)
        time.sleep(0.5)  # past "First", inside the slow one
        workers[0].process.kill()

    killer = threading.Thread(target=kill_first_child)
    killer.start()
    results = parser.parse_many(chunk, ParseLimits(), timeout=30)
    killer.join()
    assert _subjects(results) == ["First", "ParseError", "Third", "Fourth"]
    assert "the parser process died" in str(results[1])


def test_one_message_uses_the_same_limit(parser):
    with pytest.raises(ProcessingTimeout):
        parser.parse(nested(90, 60_000, "slow-alone"), ParseLimits(), None, 0.3)
    assert parser.parse(make_mail(subject="Next"), ParseLimits(), None, 30).subject == "Next"


def test_parse_errors_come_back_per_message(parser):
    results = parser.parse_many([b"", make_mail(subject="Fine")], ParseLimits(), timeout=30)
    assert isinstance(results[0], ParseError)
    assert str(results[0]) == "empty message: no headers and no body"
    assert results[1].subject == "Fine"


def _address_space_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return line.split()[3]
    raise AssertionError("no address space line")


def test_a_message_over_the_memory_limit_fails_alone_and_its_child_is_replaced(parser):
    limits = ParseLimits(memory_bytes=64 << 20)
    chunk = [tiny_parts(300_000), make_mail(subject="Fine")]  # 2 MB the parser makes ~250 MB of
    results = parser.parse_many(chunk, limits, timeout=60)
    assert _subjects(results) == ["ParseError", "Fine"]
    assert str(results[0]) == "the message needs more than 64 MiB to parse"
    assert parser.started == 1 and parser.idle == []  # the swollen child was stopped
    assert parser.parse(make_mail(subject="Next"), limits, None, 30).subject == "Next"
    assert parser.started == 2
    # The limit is the chunk's: the same child parses without one when asked to.
    (child,) = parser.idle
    assert _address_space_limit(child.process.pid) == str(64 << 20)
    assert parser.parse(make_mail(subject="Free"), ParseLimits(), None, 30).subject == "Free"
    assert _address_space_limit(child.process.pid) == "unlimited"


def test_a_new_childs_start_up_is_not_charged_to_its_first_message(parser):
    """A child imports the parser before it says it is ready: with a tight time limit,
    the first message a fresh child reads is not timed out for the child's imports."""
    parser.prestart(1)
    first = parser.parse(make_mail(subject="First"), ParseLimits(), None, timeout=0.02)
    assert first.subject == "First"


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_child_idle_for_idle_seconds_exits_and_the_next_job_starts_one(parser):
    """An idle desk does not keep its parser children (~30 MB each): each exits once it
    has had no job for idle_seconds, counted from its own last job."""
    parser.idle_seconds = 1.5
    parser.prestart(2)
    first, second = parser.idle
    time.sleep(0.8)
    assert parser.parse(make_mail(subject="Used"), ParseLimits(), None, 30).subject == "Used"
    # The job went to one of them (`second`), so `second` is idle since the job only.
    _wait_until(lambda: not first.alive())
    assert parser.idle == [second] and second.alive()
    _wait_until(lambda: not second.alive())
    assert parser.idle == [] and parser.retired == 2
    assert parser.parse(make_mail(subject="Later"), ParseLimits(), None, 30).subject == "Later"
    assert parser.started == 3
