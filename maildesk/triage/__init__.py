"""Stage 2, triage: what kind of mail this is and which ticket it may belong to.

Loops, bounces, auto-replies and list mail (`screen`, `bounce`), the thread keys a
message carries (`thread_keys`), and whether a sender is authenticated (`agent_auth`).
Pure functions of the parsed message. May import: common, intake.
"""
