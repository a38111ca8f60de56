"""The frozen application's entry point (PyInstaller runs this file; installs use the console script)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen program re-executes itself for child processes; this lets them run their task instead of the app.
    multiprocessing.freeze_support()
    from inspector_gui.launch import main

    sys.exit(main())
