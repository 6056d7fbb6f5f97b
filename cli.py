"""Run maildesk from a checkout: `python cli.py ...` is `maildesk ...`."""

from maildesk.cli import main

if __name__ == "__main__":
    main()
