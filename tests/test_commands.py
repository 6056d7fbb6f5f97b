from maildesk.decide.commands import parse_commands


def test_commands_at_the_top_are_split_from_the_body():
    block = parse_commands(
        "#status pending\n#assign me\n#PRIORITY High\n\nHi Maria,\nplease send a screenshot.\n#tag later"
    )
    assert [(c.name, c.argument) for c in block.commands] == [
        ("status", "pending"),
        ("assign", "me"),
        ("priority", "high"),
    ]
    assert block.body == "Hi Maria,\nplease send a screenshot.\n#tag later"
    assert block.errors == []


def test_note_makes_the_reply_internal():
    block = parse_commands("#note\nCustomer is on the legacy plan.")
    assert block.internal and block.body == "Customer is on the legacy plan."


def test_mistakes_are_explained():
    block = parse_commands("#status done\n#frobnicate x\n#cc not-an-address\n#assign\nbody")
    assert len(block.errors) == 4
    assert "'done' is not a status; use #status open|pending|resolved|closed" in block.errors[0]
    assert "unknown command #frobnicate" in block.errors[1]
    assert "not an email address" in block.errors[2]
    assert "#assign needs an argument" in block.errors[3]


def test_text_without_commands_is_untouched():
    block = parse_commands("Hello\n#status resolved")
    assert block.commands == [] and block.body == "Hello\n#status resolved"
