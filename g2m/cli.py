"""Shared command-line plumbing: a user-input error becomes one line and exit status 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from g2m.errors import G2MError

USER_ERROR_EXIT = 2


def one_line_error(err: BaseException) -> str:
    """An error message on one line (a multi-line message's lines joined with '; ')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "Invalid configuration:" + its items
        return f"{lines[0]} " + "; ".join(lines[1:])
    return "; ".join(lines)


def run_tool(name: str, main: Callable[[], None]) -> None:
    """Run ``main``; a :class:`G2MError` becomes one stderr line and exit status 2."""
    try:
        main()
    except G2MError as err:
        if os.environ.get("G2M_DEBUG"):
            raise
        print(f"{name}: error: {one_line_error(err)}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
