"""The batch command line: `anomaly-inspector train | score | evaluate | demo | detectors | export | import-gt |
label`.

Every verb runs the same core the window uses. Errors a user can cause print one line naming the file and
exit with status 2; nothing prints a traceback unless --debug is given. The window is not part of `core`:
the console script (`inspector_gui.launch`) passes in the function that opens it.
"""

from core.cli.entry import WindowOpener, build_parser, main

__all__ = ["WindowOpener", "build_parser", "main"]
