"""What the command line knows of the window: only the shape of the function that opens it.

`core` must not import the GUI package (an import-linter contract), so the console script in
`inspector_gui.launch` hands `main` an opener; `python -m core.cli` has none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol


class WindowOpener(Protocol):
    def __call__(self, path: str | Path | None, **kwargs: Any) -> int:
        """Open the window on `path` (kwargs: the demo's trained detector and preset); returns an exit status."""
        ...


def no_window(path: str | Path | None, **kwargs: Any) -> int:
    # After the demo (kwargs carry its model) a missing window is only a note; asked for directly, an error.
    print("the window is not available from `python -m core.cli`; run `anomaly-inspector` to open it",
          file=sys.stderr)
    return 0 if kwargs else 2
