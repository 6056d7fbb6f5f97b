"""`python -m maildesk ...` is `maildesk ...`."""

from maildesk.cli import main

main()
