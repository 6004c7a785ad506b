"""Starting points for Algorithm 1."""

from .starts import local_start, random_start, make_start

__all__ = ["local_start", "random_start", "make_start"]
