"""Stage 6, outgoing: queued notifications rendered, composed as MIME and sent by SMTP.

Templates (`templates`), rendering in a child process (`render_jobs`), MIME
(`compose`), the SMTP transport and the outbox sender that claims and marks rows.
May import: common, intake, triage, rules, decide, store.
"""
