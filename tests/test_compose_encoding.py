"""The transfer encoding of a notification's text parts is chosen without the email
package's slow sampling, and the bytes are exactly the ones the package would write."""

from __future__ import annotations

from email.contentmanager import _encode_text

from hypothesis import given, settings
from hypothesis import strategies as st

from maildesk.outgoing.compose import _cte
from maildesk.outgoing.mime_policy import POLICY

TEXTS = [
    "Plain ASCII, short lines.\n" * 5,
    "Здравствуйте, не работает вход в систему после обновления. " * 40,  # one long line
    "Не работает принтер\n" * 30,
    "Zażółć gęślą jaźń — ein Drucker fällt aus.\n" * 12,  # mostly ASCII: the package decides
    "ログインできません。至急対応をお願いします。\n" * 3,
    "a=b=c " * 200 + "ü",
    "Mixed: Привет, hello, ça va?\r\nSecond line\rthird\n\n" * 4,
    "\u2028 line separator inside Текст \x0b vertical tab\n" * 11,
]


def test_known_texts_encode_as_the_email_package_would():
    for text in TEXTS:
        assert _encode_text(text, "utf-8", _cte(text), POLICY) == _encode_text(
            text, "utf-8", None, POLICY
        )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=120,
        ),
        max_size=15,
    ).map("\n".join)
)
def test_any_text_encodes_as_the_email_package_would(text):
    assert _encode_text(text, "utf-8", _cte(text), POLICY) == _encode_text(
        text, "utf-8", None, POLICY
    )


def test_cyrillic_goes_as_base64_without_sampling():
    assert _cte("Не работает принтер на третьем этаже\n" * 20) == "base64"
    assert _cte("Hello\n") is None
    assert _cte("NUL\x00inside") == "quoted-printable"
