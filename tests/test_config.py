"""maildesk.yaml validation: every problem named with file, line and a fix."""

from __future__ import annotations

import pytest

from maildesk.common.config_file import load_config
from maildesk.common.errors import ConfigError


def problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "maildesk.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_misspelled_key_gets_line_and_suggestion(tmp_path):
    found = problems(tmp_path, "tickets:\n  prefix: MD\n  suport_address: a@b.example\n")
    assert found == [
        f"{tmp_path / 'maildesk.yaml'}:3: unknown key 'tickets.suport_address' — did you mean 'support_address'?"
    ]


def test_all_problems_reported_at_once(tmp_path):
    found = problems(
        tmp_path,
        "database:\n  url: sqlite:///x.db\n  pasword: x\nsmtp:\n  security: ssl\nmailboxes:\n  - name: a\n    host: h\n",
    )
    assert len(found) == 3
    assert any(":3:" in p and "pasword" in p for p in found)
    assert any(":5:" in p and "'tls', 'starttls' or 'none'" in p for p in found)
    assert any(":7:" in p and "username" in p for p in found)


def test_yaml_syntax_error_has_line(tmp_path):
    found = problems(tmp_path, "tickets:\n  prefix: [MD\n")
    assert "YAML syntax error" in found[0] and ":3:" in found[0]


def test_duplicate_key_is_an_error(tmp_path):
    found = problems(tmp_path, "log_level: info\nlog_level: debug\n")
    assert ":2: duplicate key 'log_level'" in found[0]


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    path = tmp_path / "conf" / "maildesk.yaml"
    path.parent.mkdir()
    path.write_text(
        "database: {url: 'sqlite:///db/md.db'}\nstorage: {path: blobs}\nrules: r.yaml\n"
    )
    config = load_config(path)
    assert config.database.url == f"sqlite:///{tmp_path / 'conf' / 'db' / 'md.db'}"
    assert config.storage.path == tmp_path / "conf" / "blobs"
    assert config.rules == tmp_path / "conf" / "r.yaml"


@pytest.mark.parametrize(
    ("written", "resolved"),
    [
        ("sqlite:///rel.db", "sqlite:///{base}/rel.db"),
        ("sqlite:///db/md.db", "sqlite:///{base}/db/md.db"),
        ("sqlite:////var/lib/maildesk/md.db", "sqlite:////var/lib/maildesk/md.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://md@db.example/md", "postgresql+psycopg://md@db.example/md"),
        ("postgresql+psycopg://md@/md?host=run/pg", "postgresql+psycopg://md@/md?host=run/pg"),
    ],
)
def test_only_a_relative_sqlite_path_is_made_relative_to_the_config_file(
    tmp_path, written, resolved
):
    path = tmp_path / "maildesk.yaml"
    path.write_text(f"database: {{url: '{written}'}}\n")
    config = load_config(path)
    assert config.database.url == resolved.format(base=tmp_path)
    assert config.database_url() == resolved.format(base=tmp_path)


def test_secret_comes_from_env_or_file_and_repr_hides_it(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("s3cret-from-file\n")
    path = tmp_path / "maildesk.yaml"
    path.write_text(
        "database:\n  url: postgresql+psycopg://md@db.example/md\n  password: {env: MD_DB_PW}\n"
        "smtp:\n  password: {file: pw}\n"
    )
    monkeypatch.setenv("MD_DB_PW", "s3cret-from-env")
    config = load_config(path)
    assert "s3cret-from-env" in config.database_url()
    assert config.smtp.password.read("smtp") == "s3cret-from-file"
    assert "s3cret" not in repr(config)
