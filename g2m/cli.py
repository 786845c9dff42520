"""Shared command-line plumbing: a user-input error becomes one line and exit status 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from g2m.errors import G2MError

USER_ERROR_EXIT = 2


def run_tool(name: str, main: Callable[[], None]) -> None:
    """Run ``main``; a :class:`G2MError` becomes one stderr line and exit status 2."""
    try:
        main()
    except G2MError as err:
        if os.environ.get("G2M_DEBUG"):
            raise
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
