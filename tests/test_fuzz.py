"""Fuzzing `process_one` with mutated real messages (Hypothesis, fixed seed and budget).

Every example must be stored or quarantined, never crash the pipeline, and the store
must account for every message fed. MAILDESK_FUZZ_EXAMPLES raises the budget for a
longer run (see bench/fuzz.md).
"""

from __future__ import annotations

import io
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from maildesk.common.errors import ParseError
from maildesk.intake.parse import parse_message
from maildesk.intake.skeleton import cut_skeleton
from maildesk.store.blobs import BlobStore
from maildesk.store.models import AutomaticMail, Message, QuarantineEntry
from tests.corpus_cases import file_cases

EXAMPLES = int(os.environ.get("MAILDESK_FUZZ_EXAMPLES", "150"))
SEEDS = [c.raw for c in file_cases()]
TOKENS = [
    b"\r\n",
    b"\r",
    b"\n",
    b"\r\n\r\n",
    b"--",
    b"\x00",
    b"\xff\xfe",
    b"=?utf-8?q?=0D=0ABcc:_x?=",
    b"=?",
    b"?=",
    b'Content-Type: multipart/mixed; boundary="x"\r\n',
    b"--x\r\n",
    b"--x--",
    b"Content-Transfer-Encoding: base64\r\n",
    b"begin 644 f\r\n",
    b"\r\nend\r\n",
    b": ",
    b"\t",
    b"charset=x-unknown",
    b"<",
    b">",
    b"\xe2\x80\xa8",
    b"Subject: ",
    b"From: <@>\r\n",
]


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate", "token"]))
        pos = draw(st.integers(0, len(raw)))
        if op == "flip" and pos < len(raw):
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 64))]
        elif op == "duplicate":
            raw[pos:pos] = raw[pos : pos + draw(st.integers(1, 400))]
        elif op == "truncate":
            del raw[pos:]
        else:
            raw[pos:pos] = draw(st.sampled_from(TOKENS))
    return bytes(raw)


@settings(max_examples=EXAMPLES * 3, derandomize=True, deadline=None)
@given(mutated_mail())
def test_parser_and_streaming_reader_never_crash(raw):
    for streamed in (False, True):
        try:
            if streamed:
                blobs = BlobStore(_TMP, fsync=False)
                skeleton = cut_skeleton(
                    io.BytesIO(raw), blobs, spill_bytes=64, max_attachment_bytes=1 << 20
                )
                msg = parse_message(skeleton.data, spilled=skeleton.spilled)
            else:
                msg = parse_message(raw)
        except ParseError:
            continue
        for text in (msg.subject, msg.text, msg.html or "", *(a.filename for a in msg.attachments)):
            text.encode("utf-8")  # storable: no lone surrogates
            assert "\x00" not in text


_TMP = None


def setup_module(module):
    import tempfile
    from pathlib import Path

    module._TMP = Path(tempfile.mkdtemp(prefix="maildesk-fuzz-"))


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=mutated_mail())
def test_process_one_stores_or_quarantines_every_message(make_desk, raw):
    desk = _desk(make_desk)
    counts = _COUNTS.setdefault(
        id(desk), {"fed": 0, "new": 0, "automatic": 0, "duplicate": 0, "held": 0}
    )
    result = desk.pipeline.process_one(raw)
    counts["fed"] += 1
    assert result.outcome in ("created", "added", "automatic", "duplicate", "quarantined")
    key = {"created": "new", "added": "new"}.get(result.outcome, result.outcome)
    counts["held" if key == "quarantined" else key] += 1
    with desk.sessions() as session:
        messages = session.scalar(select(func.count()).select_from(Message))
        apart = session.scalar(select(func.count()).select_from(AutomaticMail))
        held = session.scalar(select(func.sum(QuarantineEntry.attempts))) or 0
        if result.outcome == "quarantined":
            entry = session.get(QuarantineEntry, result.quarantine_id)
            assert desk.blobs.get(entry.raw_sha256) == raw
        elif result.automatic_id is not None:  # automatic mail about no ticket, kept apart
            assert session.get(AutomaticMail, result.automatic_id) is not None
        else:
            assert session.get(Message, result.message_pk) is not None
    # Stored + kept apart + quarantined == fed, counted in the store itself.
    assert messages + apart + counts["duplicate"] + held == counts["fed"]
    assert (messages, apart, held) == (counts["new"], counts["automatic"], counts["held"])


_DESKS: dict[int, object] = {}
_COUNTS: dict[int, dict[str, int]] = {}


def _desk(make_desk):
    # One desk for the whole run (Hypothesis calls the test once per example).
    key = id(make_desk)
    if key not in _DESKS:
        _DESKS[key] = make_desk("fuzz", extra="limits:\n  processing_seconds: 10\n")
    return _DESKS[key]
