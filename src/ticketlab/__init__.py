"""ticketlab: why lottery tickets win, as experiments you can run, check and extend."""

__version__ = "0.1.0"
