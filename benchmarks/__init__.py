"""ticketlab benchmarks: ``python -m benchmarks [--quick] [--json]`` runs every entry.

Each entry is a function ``run(quick: bool) -> dict`` (JSON-ready) so tests and other code can
call it; ``__main__`` prints them side by side with the machine they ran on.
"""
