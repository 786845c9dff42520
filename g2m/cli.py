"""Shared command-line plumbing: a user-input error becomes one line and exit status 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from g2m.errors import G2MError, RunStopped

USER_ERROR_EXIT = 2


def one_line_error(err: BaseException) -> str:
    """An error message on one line (a multi-line message's lines joined with '; ')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "Invalid configuration:" + its items
        return f"{lines[0]} " + "; ".join(lines[1:])
    return "; ".join(lines)


SIGINT_EXIT = 130  # 128 + SIGINT, as a shell reports it


def run_tool(name: str, main: Callable[[], None]) -> None:
    """Run ``main``; a :class:`G2MError` becomes one stderr line and exit status 2, a run
    stopped by a signal (:class:`RunStopped`, Ctrl-C) one line and 128 + the signal."""
    try:
        main()
    except RunStopped as stop:
        print(f"{name}: {stop}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        print(f"{name}: stopped by Ctrl-C (SIGINT); nothing was reported.", file=sys.stderr)
        sys.exit(SIGINT_EXIT)
    except G2MError as err:
        if os.environ.get("G2M_DEBUG"):
            raise
        print(f"{name}: error: {one_line_error(err)}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
