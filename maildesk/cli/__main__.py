"""`python -m maildesk.cli ...` is `maildesk ...`."""

from maildesk.cli import main

main()
