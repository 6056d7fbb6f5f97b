from maildesk.intake.html_text import html_to_text
from maildesk.intake.quotes import (
    BOTTOM,
    INLINE,
    WHOLE,
    Reply,
    extract_reply,
    reply_source,
    trim_reply,
)

APPLE = """Hi Maria,

I have refunded the second payment.

> On 23 Nov 2026, at 16:02, Maria Garcia <maria@example.org> wrote:
>
> my card was charged twice
"""

GMAIL = """Done, the export works again.

On Mon, 23 Nov 2026 at 16:02, Maria Garcia <maria@example.org> wrote:
> Export fails
"""

OUTLOOK = """Please try again now.

________________________________
From: Ivan Petrov <ivan@example.ru>
Sent: Monday, November 23, 2026 9:15 AM
To: Support <support@example.com>
Subject: error 502
"""

RUSSIAN = """Готово, кабинет снова открывается.

23 нояб. 2026 г., в 10:00, Иван Петров <ivan@romashka.example> написал(а):
> Не открывается личный кабинет
"""

SIGNATURE = (
    "Your invoice is attached.\n\n-- \n"
    + """Alice Archer
Example Support, +49 30 1234
"""
)


def test_quoted_history_from_each_client_is_trimmed():
    assert trim_reply(APPLE) == "Hi Maria,\n\nI have refunded the second payment."
    assert trim_reply(GMAIL) == "Done, the export works again."
    assert trim_reply(OUTLOOK) == "Please try again now."
    assert trim_reply(RUSSIAN) == "Готово, кабинет снова открывается."


def test_signature_after_separator_is_trimmed():
    assert trim_reply(SIGNATURE) == "Your invoice is attached."


def test_plain_text_without_quotes_is_kept_whole():
    text = "Line one.\n\nLine two with a > sign inside.\n- list item"
    assert trim_reply(text) == text


def test_a_bottom_posted_answer_is_what_follows_the_quote():
    text = "On 02/04/2012 14:20, Maria wrote:\n> it fails\n\nFixed now.\n\n-- \nAlice\n"
    assert extract_reply(text) == Reply("Fixed now.", BOTTOM)


def test_answers_between_quotes_keep_the_questions_and_drop_the_quoted_tail():
    text = "> Does it run on Linux?\nYes.\n> And on a Mac?\nNot yet.\n> Thanks\n> Maria\n"
    assert extract_reply(text) == Reply(
        "> Does it run on Linux?\nYes.\n> And on a Mac?\nNot yet.", INLINE
    )


def test_a_reply_with_nothing_of_its_own_is_kept_whole():
    text = "02.04.2012 14:20, Иван Петров пишет:\n> Вы получили мой файл?\n"
    assert extract_reply(text) == Reply(text.strip(), WHOLE)


def test_two_line_russian_header_and_polish_outlook_block_start_the_history():
    russian = '02.04.2012 14:20 пользователь "Иван" <ivan@example.ru>\nнаписал:\n> вопрос\n'
    assert trim_reply("Ответ.\n\n" + russian) == "Ответ."
    polish = "Od: Jan <jan@example.pl>\nWysłano: 2 kwietnia 2012\nDo: support@example.com\n"
    assert trim_reply("Odpowiedź.\n\n" + polish + "Temat: x\n\npytanie") == "Odpowiedź."


def test_a_mobile_signature_ends_the_answer_only_as_its_last_line():
    assert trim_reply("Done.\n\nSent from my iPhone\n") == "Done."
    kept = "Sent from my desk: the parcel left today.\nIt arrives Monday."
    assert trim_reply(kept) == kept


def test_html_only_replies_mark_blockquotes_as_quotes():
    html = "<p>Fixed.</p><div>On Mon, Maria wrote:</div><blockquote>it fails</blockquote>"
    assert reply_source(html_to_text(html), html) == "Fixed.\n\nOn Mon, Maria wrote:\n\n> it fails"
    assert reply_source("Fixed.", html) == "Fixed."  # a text part of its own is used as it is
