"""Stage 5, store: everything that reads or writes the database or the blob store.

Models and migrations, a batch's state loaded in a few queries (`lookup`), decided
messages written in bulk (`writer`), the transactional outbox rows (`outbox`),
quarantine, leases, mailbox checkpoints. May import: common, intake, triage, rules, decide.
"""
