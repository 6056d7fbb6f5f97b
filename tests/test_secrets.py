"""Passwords and tokens never show in logs, `maildesk check` output or error messages."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from maildesk.cli import cli
from maildesk.common.config_file import load_config
from maildesk.common.errors import TemporaryFailure
from tests.conftest import write_config

ENV_PW = "env-S3cret-Passw0rd"
FILE_PW = "file-S3cret-Passw0rd"
CMD_TOKEN = "cmd-S3cret-T0ken"
URL_PW = "url-S3cret-Passw0rd"


@pytest.fixture
def secret_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MD_TEST_DB_PW", ENV_PW)
    (tmp_path / "smtp.pw").write_text(FILE_PW + "\n")
    extra = f"""
smtp:
  host: 127.0.0.1
  password: {{file: {tmp_path / "smtp.pw"}}}
mailboxes:
  - name: support
    host: 127.0.0.1
    username: support@example.com
    oauth2_token: {{command: "echo {CMD_TOKEN}"}}
"""
    return tmp_path, extra


def _check_output(path) -> str:
    result = CliRunner().invoke(cli, ["--config", str(path), "check"])
    return result.output + (result.stderr if result.stderr_bytes else "")


def _assert_clean(text: str) -> None:
    for secret in (ENV_PW, FILE_PW, CMD_TOKEN, URL_PW):
        assert secret not in text


def test_check_with_an_unreachable_database_shows_no_password(secret_config, caplog):
    tmp_path, extra = secret_config
    url = f"postgresql+psycopg://maildesk:{URL_PW}@127.0.0.1:1/maildesk"
    path = write_config(tmp_path, database_url=url, extra=extra)
    with caplog.at_level(logging.DEBUG):
        output = _check_output(path)
    assert "FAIL database: cannot use the database postgresql+psycopg://maildesk:***@" in output
    assert "ok   secrets: 2 secret(s) readable" in output
    _assert_clean(output)
    _assert_clean(caplog.text)


def test_check_with_a_secret_database_password_shows_no_password(secret_config, caplog):
    tmp_path, extra = secret_config
    path = write_config(
        tmp_path,
        database_url="postgresql+psycopg://maildesk@127.0.0.1:1/maildesk\n  password: {env: MD_TEST_DB_PW}",
        extra=extra,
    )
    with caplog.at_level(logging.DEBUG):
        output = _check_output(path)
    assert "FAIL database" in output and "3 secret(s) readable" in output
    _assert_clean(output)
    _assert_clean(caplog.text)


def test_a_password_written_where_a_secret_belongs_is_not_echoed(tmp_path):
    path = write_config(tmp_path, extra=f"smtp:\n  password: {FILE_PW}\n")
    output = _check_output(path)
    assert "smtp.password" in output and "{env: NAME}" in output
    _assert_clean(output)


def test_a_mistake_next_to_a_secret_does_not_echo_it(tmp_path):
    # A reply secret written as plain text, and a mailbox entry whose error (no host)
    # would show the whole entry, its password included.
    path = write_config(
        tmp_path,
        extra=f"mailboxes:\n  - {{name: s, username: u, password: {{env: X}}, a: {FILE_PW}}}\n",
    )
    text = path.read_text().replace("reply_secret: {file: reply.key}", f"reply_secret: {CMD_TOKEN}")
    path.write_text(text)
    output = _check_output(path)
    assert "tickets.reply_secret" in output and "mailboxes.0.host: Field required" in output
    _assert_clean(output)


def test_logged_secrets_and_exception_text_are_redacted(secret_config, caplog):
    tmp_path, extra = secret_config
    config = load_config(write_config(tmp_path, extra=extra))
    config.smtp.password.read("SMTP password")
    config.mailboxes[0].oauth2_token.read("token")
    log = logging.getLogger("maildesk.test")
    with caplog.at_level(logging.DEBUG):
        log.warning("login failed for support with %s", FILE_PW)
        try:
            raise TemporaryFailure(f"IMAP said: bad token {CMD_TOKEN}")
        except TemporaryFailure:
            log.exception("mailbox support failed")
        log.info("connecting to postgresql://u:%s@db/x", URL_PW)
    assert "login failed for support with ***" in caplog.text
    assert "bad token ***" in caplog.text and "postgresql://u:***@db/x" in caplog.text
    _assert_clean(caplog.text)


def test_cli_errors_are_redacted(secret_config, monkeypatch, capsys):
    from maildesk import cli as cli_module

    tmp_path, extra = secret_config
    load_config(write_config(tmp_path, extra=extra)).smtp.password.read("SMTP password")

    def fail(*args, **kwargs):
        raise TemporaryFailure(f"server rejected password {FILE_PW}")

    monkeypatch.setattr(cli_module.cli, "main", fail)
    with pytest.raises(SystemExit):
        cli_module.main()
    err = capsys.readouterr().err
    assert "server rejected password ***" in err
    _assert_clean(err)
