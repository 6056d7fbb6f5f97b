"""Database URLs read and written without SQLAlchemy, exactly as SQLAlchemy does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from maildesk.common.db_url import libpq_conninfo, parse_url

URLS = [
    "sqlite://",
    "sqlite:///",
    "sqlite:///:memory:",
    "sqlite:///rel.db",
    "sqlite:////abs/path/maildesk.db",
    "sqlite:////abs/with space/we%23ird+name.db",
    "postgresql+psycopg://md@db.example/md",
    "postgresql+psycopg://md:p%40ss%3Aw%2Fd@db.example:5433/md",
    "postgresql+psycopg://md@/md?host=/run/postgresql&port=5433",
    "postgresql+psycopg://md@[::1]:5432/md?sslmode=require&application_name=maildesk",
    "postgresql://md@db.example/md?options=-c%20search_path%3Dmd&host=a&host=b",
    "postgresql+psycopg://:only-password@db.example/md",
]


@pytest.mark.parametrize("url", URLS)
def test_parts_and_text_are_sqlalchemys(url):
    ours, theirs = parse_url(url), make_url(url)
    assert (ours.drivername, ours.username, ours.password) == (
        theirs.drivername,
        theirs.username,
        theirs.password,
    )
    assert (ours.host, ours.port, ours.database) == (theirs.host, theirs.port, theirs.database)
    assert ours.backend == theirs.get_backend_name()
    for hide in (True, False):
        assert ours.render(hide_password=hide) == theirs.render_as_string(hide_password=hide)


@pytest.mark.parametrize("url", URLS)
def test_a_password_filled_in_is_written_as_sqlalchemy_writes_it(url):
    secret = "s3cret @:/?#%+&="
    ours = parse_url(url).replace(password=secret).render(hide_password=False)
    assert ours == make_url(url).set(password=secret).render_as_string(hide_password=False)


_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(user=_text, password=_text, host=st.from_regex(r"[a-z][a-z0-9.-]{0,10}", fullmatch=True))
def test_any_credentials_round_trip_as_in_sqlalchemy(user, password, host):
    url = make_url("postgresql+psycopg://x@h/db").set(username=user, password=password, host=host)
    text = url.render_as_string(hide_password=False)
    parsed = parse_url(text)
    assert (parsed.username, parsed.password) == (make_url(text).username, make_url(text).password)
    assert parsed.render(hide_password=False) == make_url(text).render_as_string(
        hide_password=False
    )


def test_libpq_gets_the_url_without_the_driver_and_other_databases_none():
    assert libpq_conninfo("postgresql+psycopg://md:pw@/md?host=/run/pg") == (
        "postgresql://md:pw@/md?host=%2Frun%2Fpg"
    )
    assert libpq_conninfo("sqlite:///x.db") is None


def test_a_string_that_is_no_url_is_refused():
    with pytest.raises(ValueError, match="not a database URL"):
        parse_url("maildesk.db")
