"""Who and when: the two stamps every audit row, image update, run and threshold carries."""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timezone


def utc_now() -> str:
    """UTC ISO 8601 with microseconds; fixed width so it fits the S32 time columns exactly."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def current_user() -> str:
    """The OS login name. getpass fails in some containers (no passwd entry, no $USER): say so by uid."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown-user"
