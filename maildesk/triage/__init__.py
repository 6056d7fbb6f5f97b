"""Stage 2, triage: what kind of mail this is and which ticket it may belong to.

Loops, bounces, auto-replies and list mail (`screen`, `bounce`), who wrote a post a
list rewrote for DMARC (`list_author`), the thread keys a message carries
(`thread_keys`), and whether your MX's Authentication-Results vouch for an agent
(`auth_results` reads them, `agent_auth` judges them).
Pure functions of the parsed message. May import: common, intake.
"""
