"""Full-text search, on SQLite (FTS5) and on the suite's PostgreSQL: the same mail, the
same queries, the same tickets found."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text as sa_text

from maildesk.common.search_query import WORD, QueryError, parse_query
from maildesk.common.search_words import fold, folded_words, tsvector_text
from maildesk.intake.parse import parse_message
from maildesk.intake.search_document import add_search_vector
from maildesk.store.db import make_engine, upgrade
from maildesk.store.search import SearchFilters, search_tickets
from maildesk.store.search_index import message_document
from maildesk.store.search_postgres import _vectors
from tests.conftest import make_mail, run_maildesk
from tests.test_migrations import OLD_TICKET, desk_on, write_old_ticket

CUSTOMER = "Customer <customer@example.org>"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def searchable(request, make_desk, clock, tmp_path):
    """A desk on each database with a few tickets in Russian, Polish and English."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    desk = make_desk(request.param, database_url=url)
    desk.folder = tmp_path / request.param  # where make_desk wrote its maildesk.yaml

    def mail(subject: str, body: str, **kw) -> str:
        clock.advance(minutes=10)
        return desk.pipeline.process_one(make_mail(subject=subject, body=body, **kw)).ticket_ref

    desk.refs = {
        "printer": mail("Принтер не печатает", "Наш принтер на третьем этаже снова сломался."),
        "invoice": mail(
            "Faktura za marzec",
            "Drukarka w Łodzi nie drukuje faktury. Zażółć gęślą jaźń.",
            sender="Jan Kowalski <jan@example.pl>",
            attachments=[("faktura_2026-03.pdf", "application/pdf", b"%PDF-1.4")],
        ),
        "strings": mail("How to concatenate strings", "Concatenate them; the category is wrong."),
        "cat": mail(
            "My cat", "The cat sat on the keyboard.", sender="Ivan Petrov <ivan@example.net>"
        ),
        "bill": mail("Счёт оплачен дважды", "Деньги списали два раза, верните счёт."),
        "jam": mail("Paper jam", "The paper jam happens in tray 2.", sender="ops@example.com"),
    }
    return desk


def refs(desk, query: str, **filters) -> list[str]:
    with desk.read_session() as session:
        return [h.ref for h in search_tickets(session, query, SearchFilters(**filters))]


def test_russian_words_are_found_in_their_other_forms(searchable):
    printer, bill = searchable.refs["printer"], searchable.refs["bill"]
    assert refs(searchable, "принтера") == [printer]  # genitive; the mail has принтер
    assert refs(searchable, "ПРИНТЕРАМИ") == [printer]  # any case
    assert refs(searchable, "этажа") == [printer]
    assert refs(searchable, "счет") == [bill]  # е for ё
    assert refs(searchable, "счета деньгами") == [bill]


def test_polish_words_are_found_in_their_other_forms_and_without_their_letters(searchable):
    invoice = searchable.refs["invoice"]
    assert refs(searchable, "drukarki") == [invoice]  # the mail has drukarka
    assert refs(searchable, "drukarkę") == [invoice]
    assert refs(searchable, "faktur") == [invoice]
    assert refs(searchable, "zazolc gesla") == [invoice]  # typed without ż, ó, ł, ę, ś
    assert refs(searchable, "lodzi") == [invoice]  # Łodzi


def test_a_word_never_matches_inside_another(searchable):
    assert refs(searchable, "cat") == [searchable.refs["cat"]]  # not concatenate, category
    assert refs(searchable, "nate") == []
    assert refs(searchable, "printer") == []  # English word, Russian mail
    assert refs(searchable, "concatenation") == [searchable.refs["strings"]]  # its stem


def test_every_word_must_match_and_quotes_keep_a_phrase(searchable):
    jam = searchable.refs["jam"]
    assert refs(searchable, "paper tray") == [jam]
    assert refs(searchable, "paper keyboard") == []
    assert refs(searchable, '"paper jam"') == [jam]
    assert refs(searchable, '"jam paper"') == []
    assert refs(searchable, '"cat"') == [searchable.refs["cat"]]
    assert refs(searchable, '"cats"') == []  # quoted: exactly this word


def test_addresses_names_refs_and_attachment_names_are_searched(searchable):
    invoice, cat = searchable.refs["invoice"], searchable.refs["cat"]
    assert refs(searchable, "ivan@example.net") == [cat]
    assert refs(searchable, "Petrov") == [cat]
    assert refs(searchable, "kowalski") == [invoice]
    assert refs(searchable, "faktura_2026-03.pdf") == [invoice]
    assert refs(searchable, "pdf") == [invoice]
    assert refs(searchable, invoice) == [invoice]
    assert refs(searchable, invoice.lower()) == [invoice]


def test_a_follow_up_is_searchable_as_soon_as_it_is_stored(searchable):
    jam = searchable.refs["jam"]
    assert refs(searchable, "jam warsaw") == []
    searchable.pipeline.process_one(
        make_mail(
            subject=f"Re: [{jam}] Paper jam",
            body="It is the Warsaw office.",
            sender="ops@example.com",
        )
    )
    assert refs(searchable, "jam warsaw") == [jam]  # words from two messages of one ticket


def test_filters_narrow_the_results(searchable, clock):
    desk, all_of = searchable, searchable.refs
    everything = refs(desk, "the")
    assert everything == [all_of["jam"], all_of["cat"], all_of["strings"]]  # newest first
    assert refs(desk, "the", limit=2) == everything[:2]
    assert refs(desk, "the", requester="OPS@example.com") == [all_of["jam"]]
    assert refs(desk, "the", statuses=("closed",)) == []
    assert refs(desk, "the", statuses=("new", "closed")) == everything
    assert refs(desk, "the", queue="general") == everything
    assert refs(desk, "the", queue="billing") == []
    assert refs(desk, "the", assignee="none") == everything
    assert refs(desk, "the", assignee="alice@example.com") == []
    assert refs(desk, "faktury", assignee="Carol@example.com", queue="billing") == [
        all_of["invoice"]
    ]
    created = datetime(2026, 11, 23, 10, 45, tzinfo=UTC)  # "strings" at 10:30, "cat" at 10:40
    assert refs(desk, "the", since=created) == [all_of["jam"]]
    assert refs(desk, "the", until=created) == [all_of["cat"], all_of["strings"]]


def test_the_snippet_shows_the_words_that_matched(searchable):
    with searchable.read_session() as session:
        (hit,) = search_tickets(session, "третьем")
        assert hit.snippet == "Наш принтер на третьем этаже снова сломался."
        assert (hit.subject, hit.status, hit.queue) == ("Принтер не печатает", "new", "general")
        (hit,) = search_tickets(session, "Kowalski")  # in the From: the snippet is the text's start
        assert hit.snippet.startswith("Drukarka w Łodzi nie drukuje faktury.")


def test_cli_search_prints_json_and_text(searchable):
    desk_dir = searchable.folder
    result = run_maildesk(desk_dir, "tickets", "search", "drukarka", "--json")
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.output)
    assert list(found) == [
        "ref", "subject", "status", "queue", "assignee", "requester",
        "created_at", "updated_at", "snippet",
    ]  # fmt: skip
    assert found["ref"] == searchable.refs["invoice"] and found["requester"] == "jan@example.pl"
    assert found["created_at"] == "2026-11-23T10:20:00Z" and found["status"] == "new"
    assert (found["queue"], found["assignee"]) == ("billing", "carol@example.com")  # by a rule
    text = run_maildesk(desk_dir, "tickets", "search", "принтер", "--status", "new")
    assert text.exit_code == 0
    assert text.output.splitlines()[0].split()[:3] == [searchable.refs["printer"], "new", "general"]
    assert "Наш принтер на третьем этаже" in text.output
    none = run_maildesk(desk_dir, "tickets", "search", "nothing-like-this", "--since", "2026-11-01")
    assert none.exit_code == 0 and none.output.strip() == "no tickets match"


def test_cli_until_takes_in_the_whole_day_and_refuses_a_bad_date(searchable):
    desk_dir = searchable.folder
    day = run_maildesk(desk_dir, "tickets", "search", "the", "--until", "2026-11-23", "--json")
    assert len(json.loads(day.output)) == 3
    before = run_maildesk(desk_dir, "tickets", "search", "the", "--until", "2026-11-22", "--json")
    assert json.loads(before.output) == []
    bad = run_maildesk(desk_dir, "tickets", "search", "the", "--since", "yesterday")
    assert bad.exit_code == 2 and "'yesterday' is not a date" in bad.output


def test_a_query_without_words_is_refused():
    with pytest.raises(QueryError, match="give at least one word"):
        parse_query(' "" -- ')
    assert [t.words for t in parse_query('MD-12 "paper  jam" x')] == [
        ("MD", "12"),
        ("paper", "jam"),
        ("x",),
    ]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_upgrading_indexes_the_mail_already_stored(kind, tmp_path, request):
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine, "0002_notify")
    engine.dispose()
    write_old_ticket(url)
    desk_dir = desk_on(url, tmp_path / "desk")
    assert run_maildesk(desk_dir, "db", "upgrade").exit_code == 0
    found = run_maildesk(desk_dir, "tickets", "search", "деньгами СПИСАЛИ", "--json")
    assert [h["ref"] for h in json.loads(found.output)] == [OLD_TICKET["ref"]]
    assert json.loads(found.output)[0]["snippet"] == "Деньги списали два раза."


def test_cli_search_loads_no_pipeline_rules_or_templates(tmp_path, desk_dir):
    from tests.test_cli_startup import modules_loaded

    config = str(desk_dir / "maildesk.yaml")
    loaded = modules_loaded(tmp_path, "--config", config, "tickets", "search", "printer")
    assert loaded & {"jinja2", "imapclient", "aiosmtplib", "mailparser", "nh3", "re2"} == set()
    stages = {m.split(".")[1] for m in loaded if m.startswith("maildesk.") and "." in m}
    assert stages <= {"cli", "common", "store"}, stages


_WORDS_OF_THE_INDEX = st.text(
    alphabet=st.one_of(
        st.sampled_from("ąęłóśżźćńёЁйÉé İıßﬁ\u0301\u0307\u00a0\t\n_-.,"),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=80,
)


@given(_WORDS_OF_THE_INDEX)
def test_the_postgresql_index_gets_the_words_of_the_whole_folded_text(text):
    # folded_words folds token by token (cached) for speed; the words must be those of
    # folding the whole text at once, or a stored mail would not be found by its words.
    assert folded_words(text) == WORD.findall(fold(text))


@pytest.mark.postgres
def test_the_tsvectors_written_by_maildesk_are_those_postgresql_would_make(postgres_url):
    # The daemon writes each message's tsvector itself (the server's to_tsvector was a
    # fifth of its ingest time); it must be the one to_tsvector('simple') makes.
    letters = "abcxyz0189ąęłóśżёжщй"
    texts = [
        "Принтер не печатает, the printer on floor 3 is broken. Drukarka w Łodzi!",
        " ".join(f"w{n % 300}" for n in range(20_000)),  # past the last position, 16383
        "same " * 400 + "other",  # more than 255 positions of one word
        "x" * 3000 + " short words after a very long one",
    ] + ["".join(letters[(n * k) % len(letters)] for k in range(n % 17 + 1)) for n in range(300)]
    # The parser child makes the vector of a message without its ticket ref; the store
    # puts the ref's in front with `||`: that must be the vector of the whole document.
    joined = sa_text(
        "SELECT CAST(:ref AS tsvector) || CAST(:rest AS tsvector), to_tsvector('simple', :words)"
    )
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            for text in texts:
                words = folded_words(text)
                ours, theirs = conn.execute(
                    sa_text("SELECT CAST(:ours AS tsvector), to_tsvector('simple', :words)"),
                    {"ours": tsvector_text(words), "words": " ".join(words)},
                ).one()
                assert ours == theirs, text[:60]
            for text in texts[:4]:
                msg = parse_message(make_mail(subject="Re: help", body=text))
                add_search_vector(msg)  # as the parser child does
                for ref in ("MD-42", "same-7", "w5-w17"):  # the last two repeat text words
                    ref_vector, rest = _vectors(ref, msg)
                    whole = " ".join(folded_words(message_document(ref, msg)))
                    params = {"ref": ref_vector, "rest": rest, "words": whole}
                    ours, theirs = conn.execute(joined, params).one()
                    assert ours == theirs, (ref, text[:60])
    finally:
        engine.dispose()
