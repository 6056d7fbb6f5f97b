"""What starts quoted history or a signature in a reply, line by line.

Quote headers ("On <date>, <name> wrote:") in one to three lines, in the languages the
desk's customers write in; Outlook header blocks (From:/Sent:/To:/Subject: in any of
those languages, the label alone on its line as HTML-to-text leaves it); separators
such as "-----Original Message-----"; `-- ` and mobile signatures. mail-parser-reply's
patterns add the languages listed here in `_LIBRARY_LANGUAGES`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailparser_reply.constants import MAIL_LANGUAGES

_VERBS = (
    r"wrote|writes|escribió|escribio|a écrit|a ecrit|schrieb|hat geschrieben"
    r"|napisał\(a\)|napisała|napisał|nadesłał|pisze|написал\(а\)|написала|написал|пишет"
    r"|написа|написав\(ла\)|написав|пише|skrev|schreef|geschreven|ha scritto|escreveu"
    r"|napsal\(a\)|napsal|đã viết"
)
# The end of a quote header: "... wrote:", "---- John wrote ----", or (mail.ru, Yandex,
# Gmail in Russian) an address and a colon with no verb at all.
_WROTE_END = re.compile(
    rf"(?:^|[\s,])(?:{_VERBS})\s*(?::|-{{2,}})\s*$|\sschrieb\s[^:]{{1,120}}:\s*$", re.IGNORECASE
)
_ADDRESS_END = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+\s*>?\s*\)?\s*:\s*$")
_TIME = re.compile(r"\d{1,2}:\d{2}")
# How the first line of a wrapped quote header starts: a date, or the word before it.
_OPENER = re.compile(
    r"^\s*(?:-{2,}|\d|On\s|Le\s|Am\s|El\s|W dniu\s|Dnia\s|Il\s|Op\s|Em\s|Den\s|På\s|На\s|В\s"
    r"|Vào\s|\W*[^\W\d_]{2,12}\.?,\s*\d)",
    re.IGNORECASE,
)

_FROM_LABELS = r"From|Od|От|Від|Von|De|Da|Van|Fra|Från"
_DATE_LABELS = (
    r"Sent|Date|Wysłano|Wysłane|Data|Отправлено|Дата|Изпратено|Надіслано|Gesendet|Datum"
    r"|Envoyé|Enviado el|Enviado|Fecha|Inviato|Verzonden|Sendt|Skickat"
)
_OTHER_LABELS = (
    r"To|Subject|Cc|Bcc|On Behalf Of|Do|Temat|DW|Kopia|Кому|Тема|Копия|До|Относно|Копие"
    r"|Копія|An|Betreff|À|Objet|Para|Asunto|A|Oggetto|Aan|Onderwerp|Til|Emne|Till|Ämne"
)
_LABEL = re.compile(
    rf"^\s*\*?(?:(?P<sender>{_FROM_LABELS})|(?P<date>{_DATE_LABELS})|{_OTHER_LABELS})"
    r"\s*\*?\s*:\s*\*?(?:\s|$)",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*[_-]{20,}\s*$")  # Outlook's line above its header block
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Reply Message|Forwarded message|Ursprüngliche Nachricht"
    r"|Antwort Nachricht|Weitergeleitete Nachricht|Message d'origine|Message transféré"
    r"|Mensaje original|Mensaje reenviado|Messaggio originale|Wiadomość oryginalna"
    r"|Oryginalna wiadomość|Przekazana wiadomość|Исходное сообщение|Пересылаемое сообщение"
    r"|Оригинално съобщение|Препратено съобщение|Оригінальне повідомлення"
    r"|Початкове повідомлення|Переслане повідомлення|Původní zpráva|Oorspronkelijk bericht"
    r"|Oprindelig meddelelse)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^--\s*$|^\s*_{20,}\s*$")  # RFC 3676 "-- ", or a rule before a footer
_MOBILE = re.compile(
    r"^\s*(?:Sent from (?:my|a|an|mobile|Mail|Outlook|Yahoo|Samsung|iPhone|iPad|Android"
    r"|BlackBerry|Windows|Yandex|myMail)|Sent with|Sent via|Get Outlook for"
    r"|Отправлено (?:с|со|из|через)|Wysłane (?:z|przy)|Wysłano z|Изпратено (?:от|чрез|с)"
    r"|Надіслано (?:з|із|від)|Von meinem|Gesendet von|Gesendet mit|Envoyé de|Envoyé depuis"
    r"|Enviado desde|Enviado do meu|Inviato da|Verzonden (?:vanaf|met)|Skickat från"
    r"|Sendt fra)\b.{0,60}$",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"^\s*>")

# Languages whose "... wrote:" lines mail-parser-reply knows and our patterns do not. Its
# From:-block patterns are not used: they take "From: Monday / To: Friday" for a header.
_LIBRARY_LANGUAGES = ("it", "nl", "cs", "sv", "da", "ja", "ko", "zh")
_LIBRARY_HEADERS = re.compile(
    "|".join(MAIL_LANGUAGES[lang]["wrote_header"] for lang in _LIBRARY_LANGUAGES),
    re.MULTILINE | re.IGNORECASE,
)


@dataclass(frozen=True)
class Header:
    """Lines [start, end) that introduce quoted history."""

    start: int
    end: int


def is_quoted(line: str) -> bool:
    return bool(_QUOTED.match(line))


def is_blank(line: str) -> bool:
    return not line.strip()


def signature_at(lines: list[str], index: int, end: int) -> bool:
    """Does a signature start at `index` (the segment it is in ends at `end`)?

    A mobile signature counts only as the last line of its segment: "Sent from my
    warehouse, it arrives Monday." in the middle of an answer is text.
    """
    line = lines[index]
    if _SIGNATURE.match(line):
        return True
    if _MOBILE.match(line):
        return all(is_blank(rest) for rest in lines[index + 1 : end])
    return False


def find_headers(lines: list[str]) -> list[Header]:
    """Every quote header, Outlook header block and separator among unquoted lines."""
    found: list[Header] = []
    index = 0
    while index < len(lines):
        header = _header_at(lines, index)
        if header is None:
            index += 1
            continue
        found.append(header)
        index = header.end
    starts = {h.start for h in found}
    for line in _library_header_lines(lines):
        if line not in starts and not is_quoted(lines[line]):
            found.append(Header(line, line + 1))
    return sorted(found, key=lambda h: h.start)


def _header_at(lines: list[str], index: int) -> Header | None:
    line = lines[index]
    if is_quoted(line) or is_blank(line):
        return None
    if _SEPARATOR.match(line):
        return Header(index, index + 1)
    block = _outlook_block(lines, index)
    if block is not None:
        return block
    # A header ends on this line: find where it starts (it may be wrapped over 3 lines).
    if _WROTE_END.search(line) or _ADDRESS_END.search(line):
        for start in range(max(index - 2, 0), index + 1):
            part = lines[start : index + 1]
            if any(is_blank(p) or is_quoted(p) for p in part):
                continue
            opens = start == index or _OPENER.match(lines[start])
            if opens and _plausible_header(" ".join(part), line):
                return Header(start, index + 1)
    return None


def _plausible_header(joined: str, last: str) -> bool:
    """A date or an address in it: "As you wrote:" is a sentence, not a header."""
    if len(joined) > 400:
        return False
    if _ADDRESS_END.search(last):
        return bool(_TIME.search(joined))
    return "@" in joined or any(c.isdigit() for c in joined) or joined.lstrip().startswith("--")


def _outlook_block(lines: list[str], index: int) -> Header | None:
    """From:/Sent:/To:/Subject: (in any language we know) within a few lines: a sender and
    a date among them, and a third label or an address ("Od: 10.04 / Do: 15.04" is text)."""
    if not _LABEL.match(lines[index]):
        return None
    labels: set[str] = set()
    sender = dated = False
    end = index
    seen = 0
    for pos in range(index, min(len(lines), index + 16)):
        line = lines[pos]
        if is_blank(line):
            continue
        seen += 1
        match = _LABEL.match(line)
        if match:
            labels.add(line.split(":", 1)[0].strip(" *").lower())
            sender = sender or bool(match.group("sender"))
            dated = dated or bool(match.group("date"))
            end = pos + 1
        if seen >= 10:
            break
    block_text = " ".join(lines[index:end])
    if not (sender and dated) or not (len(labels) >= 3 or "@" in block_text):
        return None
    start = index
    before = index - 1
    while before >= 0 and is_blank(lines[before]):
        before -= 1
    if before >= 0 and _RULE.match(lines[before]):
        start = before
    return Header(start, end)


def _library_header_lines(lines: list[str]) -> list[int]:
    """Lines where mail-parser-reply sees a "... wrote:" header (it reads lines stripped)."""
    text = "\n".join(line.strip() for line in lines)
    found = []
    for match in _LIBRARY_HEADERS.finditer(text):
        offset = match.start() + len(match.group(0)) - len(match.group(0).lstrip("\n"))
        found.append(text.count("\n", 0, offset))
    return found
