"""Stage 1, intake: mail sources and raw bytes -> ParsedMessage.

Sources (IMAP, Maildir), the received message in memory or spooled (`raw_mail`),
reading within the size, time and memory limits (`message_reader`) in sandboxed
parser children, MIME parsing, charsets, TNEF, what a report says (bounces, complaints,
SES notifications: `report_signals`, `delivery_status`, `bounce_text`), HTML to text,
quote trimming, file names.
May import: common.
"""
