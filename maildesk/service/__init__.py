"""The running desk: wiring (`desk`, the only place real objects are built), the ingest
pipeline that drives the stages for each batch, the daemon and its mailbox workers,
the scheduler, metrics endpoint and `maildesk check`.

May import every stage package above it: common, intake, triage, rules, decide,
store, outgoing.
"""
