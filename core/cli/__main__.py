"""`python -m core.cli ...`: the batch verbs without the window (use `anomaly-inspector` for the window)."""

import sys

from core.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
