"""Ctrl-C, wherever it lands. The console entry installs this handler before any library loads: it
records that an interrupt came, then raises KeyboardInterrupt as Python's own handler would. A
library that swallows the KeyboardInterrupt (an import cut short, leaving numpy or numba half
loaded) can then fail in odd ways; the CLI consults ``hit()`` and reports any such failure as the
interrupt it is: one line, exit status 130. Standard library only: it must load first and fast.

Python runs a signal handler only between bytecodes, so a Ctrl-C that lands in one long C call (a
paper-scale Hessian's eigendecomposition, a big matrix product) would wait for it to return, for
minutes. (Numerical libraries release the GIL in such calls, so the watchdog below can run.) A watchdog thread therefore wakes on the signal itself (``signal.set_wakeup_fd``), gives the
main thread ``GRACE_S`` seconds to unwind normally, and then leaves with status 130; a second Ctrl-C
leaves at once. Leaving that way loses nothing: finished chunks are committed SQLite transactions
(the kill -9 tests in tests/test_faults.py check that a hard stop keeps exactly the committed trials)."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading

MESSAGE = "interrupted: finished trials are saved; rerun the same command to resume"
_hits: list[int] = []
_reported: list[bool] = []
#: seconds the watchdog lets the main thread unwind after a Ctrl-C before it leaves with status 130
GRACE_S = 5.0


def _on_sigint(signum, frame):
    _hits.append(signum)
    raise KeyboardInterrupt


def install() -> None:
    """Record interrupts and start the watchdog (from the main thread, before any library loads)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
        sys.unraisablehook = _quiet_interrupt(sys.unraisablehook)
        sys.excepthook = _quiet_excepthook(sys.excepthook)
        _start_watchdog()


def _quiet_interrupt(previous):
    """An interrupt raised where Python cannot propagate it (a weakref callback of the import system,
    a __del__) is printed by Python as 'Exception ignored in ...' with a traceback; ours is reported
    once, as the one line, by whoever leaves: drop that print, keep every other one."""
    def hook(unraisable):
        if _hits and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        previous(unraisable)
    return hook


def _quiet_excepthook(previous):
    """A C extension that imports a module from C and prints what went wrong (PyErr_Print, which calls
    sys.excepthook) prints our KeyboardInterrupt as a traceback rooted in the import system, then goes
    on; the run then leaves through the CLI with the one line. After our handler recorded an interrupt,
    drop that print; keep every other one (and an interrupt the handler never saw)."""
    def hook(exc_type, exc_value, tb):
        if _hits and issubclass(exc_type, KeyboardInterrupt):
            return
        previous(exc_type, exc_value, tb)
    return hook


def _start_watchdog() -> None:
    try:
        r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (ValueError, OSError):  # not the main thread, or no pipe: the handler alone still works
        return

    def watch() -> None:
        deadline = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - _now())
            ready, _, _ = select.select([r], [], [], timeout)
            if not ready:  # the grace ran out and the main thread is still busy (a long C call)
                exit_interrupted(line=not _reported)
            if signal.SIGINT not in os.read(r, 64):
                continue
            if deadline is not None:  # a second Ctrl-C: leave now
                exit_interrupted(line=not _reported)
            deadline = _now() + GRACE_S

    threading.Thread(target=watch, name="ticketlab-interrupt", daemon=True).start()


def _now() -> float:
    import time

    return time.monotonic()


def mark_reported() -> None:
    """The interrupt line has been printed (the watchdog then leaves without printing it again)."""
    _reported.append(True)


def hit() -> bool:
    return bool(_hits)


def reported() -> bool:
    """Whether the interrupt line has already been printed."""
    return bool(_reported)


def exit_interrupted(line: bool = True) -> None:
    """Print the one line and leave with status 130, whatever half-loaded library is still around."""
    try:
        sys.stdout.flush()
    except Exception:
        pass
    if line:
        sys.stderr.write(MESSAGE + "\n")
        _reported.append(True)
    sys.stderr.flush()
    os._exit(130)
