from . import _interrupt

_interrupt.install()
try:
    from .cli import main

    rc = main()
except BaseException as err:  # an interrupt may surface as another error from a half-loaded library
    if _interrupt.hit() or isinstance(err, KeyboardInterrupt):
        _interrupt.exit_interrupted()
    raise
if rc == 130:  # main printed the line; leave at once, whatever half-loaded library is still around
    _interrupt.exit_interrupted(line=False)
if _interrupt.hit():  # a Ctrl-C that some library swallowed: the run did not finish as asked
    _interrupt.exit_interrupted()
raise SystemExit(rc)
