from maildesk.intake.quotes import trim_reply

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
