"""The ``ticketlab`` console command: the interrupt handler goes in before the CLI (and torch, numba)
load, so a Ctrl-C during those imports is still reported as one line with exit status 130. Kept apart
from ``_interrupt`` (which the CLI imports) so that no module imports its own importer."""

from __future__ import annotations

from ._interrupt import exit_interrupted, hit, install, reported

__all__ = ["console"]


def console() -> None:
    """Install the handler, run the CLI, and turn an interrupt wherever it surfaced into one line and
    exit status 130."""
    try:  # install() too: a Ctrl-C can land right after the handler is in place
        install()
        from .cli import main

        rc = main()
        if rc == 130:  # main printed the line; leave at once, whatever half-loaded library is still around
            exit_interrupted(line=False)
        if hit():  # a Ctrl-C that some library swallowed: the run did not finish as asked
            exit_interrupted(line=not reported())
    except BaseException as err:  # an interrupt may surface as another error from a half-loaded library
        if hit() or isinstance(err, KeyboardInterrupt):
            exit_interrupted(line=not reported())
        raise
    raise SystemExit(rc)
