"""Child pools when a child is lost after its jobs are done (common.children)."""

from __future__ import annotations

from maildesk.common.children import ChildPool


def _answer(job: str) -> object:
    """Runs in the child: a result that cannot be sent back for "unsendable"."""
    if job == "unsendable":
        return lambda: None  # pickling it fails: the child dies while answering
    return job.upper()


def test_a_child_lost_while_answering_fails_only_the_job_whose_answer_it_could_not_send():
    pool = ChildPool("tests.test_children:_answer", "test", max_idle=1)
    try:
        results = pool.run(["first", "unsendable", "last"], timeout=10)
    finally:
        pool.close()
    assert [status for status, _ in results] == ["ok", "error", "ok"]
    assert [results[0][1], results[2][1]] == ["FIRST", "LAST"]
    assert "the test process died" in results[1][1]
    assert pool.started <= 5  # the chunk once, then each job alone once
