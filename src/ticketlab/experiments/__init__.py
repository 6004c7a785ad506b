"""The paper's experiments, one module per figure, found by name."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..config import ConfigError

if TYPE_CHECKING:
    from .base import Experiment

__all__ = ["REGISTRY", "available", "get_experiment"]

#: name -> module defining EXPERIMENT
REGISTRY = {
    "fig2": "fig2", "fig3": "fig3", "fig4": "fig4", "fig5": "fig5", "fig6": "fig6",
    "fig7": "fig7", "fig8": "fig8", "fig9": "fig9", "fig10": "fig10", "landscape": "landscape",
    "fig11": "fig11", "init": "init",
}


def available() -> list[str]:
    """The names of the registered experiments, in registry order."""
    return list(REGISTRY)


def get_experiment(name: str) -> Experiment:
    """The ``Experiment`` registered as ``name`` (its module is imported on first use); ConfigError
    listing the names for an unknown one."""
    names = available()
    if name not in names:
        raise ConfigError(f"unknown experiment {name!r}: choose from {', '.join(names)}")
    return importlib.import_module(f"{__name__}.{REGISTRY[name]}").EXPERIMENT
