"""What a result depends on beyond its config: code version, commit, library versions, host."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

from . import __version__

__all__ = ["provenance"]


@functools.cache
def git_commit() -> str | None:
    """The commit of the ticketlab source tree, if it is a git checkout ('+dirty' if modified)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return None
        # only the code counts: results written into the checkout (results/, docs/results/) do not
        # make the code that produced them "dirty"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                "src", "pyproject.toml"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: str = "cpu", dtype: str = "float64") -> dict:
    """What is stored with every result row: code version and commit, library versions, Python, platform,
    device (and its name), dtype and the Algorithm 1 engine."""
    import numpy
    import torch

    return {
        "ticketlab_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "numpy_version": numpy.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available()
        else platform.processor() or platform.machine(),
        "dtype": dtype,
        "engine": _engine(device),
    }


def _engine(device: str) -> str:
    """Which Algorithm 1 engine this process's choice resolves to here (a sweep overwrites it with the
    engines that actually ran)."""
    from .config import ConfigError
    from .engine import resolve

    try:
        return resolve("cpu" if device == "cpu" else "cuda")
    except ConfigError:
        return "unavailable"
