"""Ctrl-C, wherever it lands. The console entry installs this handler before any library loads: it
records that an interrupt came, then raises KeyboardInterrupt as Python's own handler would. A
library that swallows the KeyboardInterrupt (an import cut short, leaving numpy or numba half
loaded) can then fail in odd ways; the CLI consults ``hit()`` and reports any such failure as the
interrupt it is: one line, exit status 130. Standard library only: it must load first and fast."""

from __future__ import annotations

import os
import signal
import sys

MESSAGE = "interrupted: finished trials are saved; rerun the same command to resume"
_hits: list[int] = []


def _on_sigint(signum, frame):
    _hits.append(signum)
    raise KeyboardInterrupt


def install() -> None:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def hit() -> bool:
    return bool(_hits)


def exit_interrupted(line: bool = True) -> None:
    """Print the one line and leave with status 130, whatever half-loaded library is still around."""
    try:
        sys.stdout.flush()
    except Exception:
        pass
    if line:
        sys.stderr.write(MESSAGE + "\n")
    sys.stderr.flush()
    os._exit(130)
