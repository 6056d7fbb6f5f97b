"""Templates: shipped in English, Russian, Polish, Bulgarian and Ukrainian, admin overrides,
languages, `maildesk check`."""

from __future__ import annotations

import logging
import re
import shutil

import pytest
from click.testing import CliRunner

from maildesk.cli import cli
from maildesk.common.config import Config
from maildesk.common.resources import default_templates_dir, example_rules
from maildesk.decide.template_context import TEMPLATES, sample_context
from maildesk.outgoing.templates import Renderer
from tests.conftest import make_mail
from tests.mailflow import outbox_rows, parse

SHIPPED = ["en", "ru", "pl", "bg", "uk"]


@pytest.mark.parametrize("language", SHIPPED)
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_event_ships_text_and_escaped_html(language, name):
    renderer = Renderer()
    assert renderer.source_of(name, language).parent.name == language  # no silent fallback
    context = sample_context(Config(), name)
    context["body"] = "<script>alert(1)</script> & more"
    rendered = renderer.render_strict(name, language, context)
    assert "[MD-1]" in rendered.subject and "\n" not in rendered.subject
    assert rendered.html is not None
    assert "<script>" not in rendered.html
    if "{{ body }}" in (default_templates_dir() / language / f"{name}.html.j2").read_text():
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in rendered.html
        assert "<script>alert(1)</script> & more" in rendered.text  # plain text stays plain


_EXPRESSION = re.compile(r"{[{%](.*?)[}%]}", re.DOTALL)
_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")
_NAME = re.compile(r"\b[a-z_]+(?:\.[a-z_]+)*")
_JINJA_WORDS = {
    "if",
    "else",
    "endif",
    "for",
    "in",
    "endfor",
    "block",
    "endblock",
    "extends",
    "include",
    "and",
    "or",
    "not",
    "is",
    "defined",
    "format",
    "datetime",
}


def variables(path) -> set[str]:
    """The variables (with their attributes) a template reads."""
    found = set()
    for expression in _EXPRESSION.findall(path.read_text()):
        found |= set(_NAME.findall(_STRING.sub("", expression))) - _JINJA_WORDS
    return found


@pytest.mark.parametrize("language", ["pl", "bg", "uk"])
def test_translations_have_every_english_template_with_the_same_variables(language):
    english = default_templates_dir() / "en"
    for source in sorted(english.glob("*.j2")):
        translated = default_templates_dir() / language / source.name
        assert translated.exists(), f"{language}/{source.name} is missing"
        # The rating labels ("very happy") are English words: translations show digits only.
        wanted = variables(source) - {"link.label"}
        assert variables(translated) == wanted, f"{language}/{source.name}"


def test_russian_queue_gets_russian_notifications(make_desk):
    rules = example_rules().read_text()
    desk = make_desk(rules=rules.replace("queue: general\n", "queue: russian\n", 1))
    desk.pipeline.process_one(make_mail(subject="Не работает принтер"))
    ack, to_agent = outbox_rows(desk)
    message = parse(ack.raw)
    assert str(message["Subject"]) == "[MD-1] Не работает принтер"
    assert message["Content-Language"] == "ru"
    assert "Здравствуйте" in message.get_body(("plain",)).get_content()
    assert "Новая заявка MD-1" in parse(to_agent.raw).get_body(("plain",)).get_content()


def admin_ack(make_desk, folder, text: str):
    """A desk whose admin template folder holds only `en/ack.txt.j2` with `text`."""
    (folder / "en").mkdir(parents=True)
    (folder / "en" / "ack.txt.j2").write_text(text)
    return make_desk(extra=f"templates: {folder}\n")


def test_admin_override_of_the_text_drops_the_shipped_html(make_desk, tmp_path):
    desk = admin_ack(
        make_desk,
        tmp_path / "admin-templates",
        "{% block subject %}We got it: {{ ticket.subject }}{% endblock %}\n"
        "{% block body %}Ticket {{ ticket.ref }}. Our own words.{% endblock %}\n",
    )
    desk.pipeline.process_one(make_mail(subject="Printer"))
    ack = parse(outbox_rows(desk)[0].raw)
    assert str(ack["Subject"]) == "[MD-1] We got it: Printer"  # the token is added when missing
    assert ack.get_content_type() == "text/plain"  # the shipped HTML would hide the override
    assert ack.get_content().strip() == "Ticket MD-1. Our own words."


def test_broken_admin_template_falls_back_to_the_shipped_one_at_send_time(
    make_desk, tmp_path, caplog
):
    desk = admin_ack(
        make_desk,
        tmp_path / "admin-templates",
        "{% block subject %}{{ ticket.subject }}{% endblock %}\n{% block body %}\n"
        "Hello {{ ticket.requester_nmae }}\n{% endblock %}\n",
    )
    with caplog.at_level(logging.ERROR):
        result = desk.pipeline.process_one(make_mail())
    assert result.outcome == "created"  # a template typo never loses the request
    ack = parse(outbox_rows(desk)[0].raw)
    text = " ".join(ack.get_body(("plain",)).get_content().split())
    assert "We have opened ticket MD-1 for your request" in text
    assert "en/ack.txt.j2:3" in caplog.text and "requester_nmae" in caplog.text


def test_check_names_the_broken_template_and_line(make_desk, tmp_path):
    admin = tmp_path / "admin-templates"
    shutil.copytree(default_templates_dir(), admin)
    (admin / "en" / "ack.txt.j2").write_text(
        "{% block subject %}[{{ ticket.ref }}]{% endblock %}\n{% block body %}\n"
        "{% if ticket.status %}\nno endif here\n{% endblock %}\n"
    )
    html = admin / "ru" / "agent_reply.html.j2"
    html.write_text(html.read_text().replace("{{ agent.name }}", "{{ agent.nmae|upper }}"))
    desk = make_desk(extra=f"templates: {admin}\n")

    result = CliRunner().invoke(cli, ["--config", desk.config.source, "check"])
    assert result.exit_code == 1
    assert f"{admin}/en/ack.txt.j2:5" in result.output
    assert f"{admin}/ru/agent_reply.html.j2:4" in result.output
    assert "nmae" in result.output


def test_check_passes_with_the_shipped_templates(make_desk):
    desk = make_desk()
    result = CliRunner().invoke(cli, ["--config", desk.config.source, "check"])
    assert result.exit_code == 0, result.output
    shipped = [p for p in default_templates_dir().glob("*/*.txt.j2") if not p.name.startswith("_")]
    assert len(shipped) >= 22  # 11 events in English and Russian
    assert f"ok   templates: {len(shipped)} templates render" in result.output


def test_check_flags_an_auto_reply_template_that_does_not_exist(make_desk):
    rules = example_rules().read_text()
    desk = make_desk(rules=rules.replace("auto_reply: ack", "auto_reply: welcome"))
    result = CliRunner().invoke(cli, ["--config", desk.config.source, "check"])
    assert result.exit_code == 1
    assert "rules.yaml names template 'welcome', which does not exist" in result.output
