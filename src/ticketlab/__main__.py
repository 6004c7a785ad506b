import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the libraries load: the same line and status as during a run
    print("interrupted: finished trials are saved; rerun the same command to resume", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
