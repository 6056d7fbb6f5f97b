from maildesk.triage.thread_keys import strip_token, subject_ticket_numbers


def test_token_tolerates_prefixes_case_and_spacing():
    for subject in [
        "Re: [MD-42] x",
        "RE:[md-42]",
        "AW: [ MD - 42 ] x",
        "Fwd: Отв: [MD#42]",
        "[Md 42]",
        "SV: (MD-42)",
    ]:
        assert subject_ticket_numbers(subject, "MD") == [42], subject


def test_other_prefixes_and_plain_numbers_are_not_tokens():
    assert subject_ticket_numbers("[XY-42] order 42 MD-42", "MD") == []


def test_configurable_prefix():
    assert subject_ticket_numbers("Re: [HELP-7] hi", "HELP") == [7]


def test_strip_token_for_display():
    assert strip_token("Re: AW: Отв: [MD-1] Не работает", "MD") == "Не работает"
