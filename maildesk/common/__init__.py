"""Shared vocabulary and helpers every stage uses: errors, the ticket vocabulary
(`domain`), maildesk.yaml (`config`), YAML with line numbers, secret redaction,
business-hours arithmetic, Message-IDs, Outlook thread indexes, child processes, metrics.

Imports nothing else from maildesk.
"""
