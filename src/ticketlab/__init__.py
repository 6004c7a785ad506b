"""ticketlab: why lottery tickets win, as experiments you can run, check and extend."""

__all__ = ["__version__"]

#: the package version (also in pyproject.toml)
__version__ = "0.1.0"
