"""Devices and dtypes by name: a clear message at the edge instead of a CUDA traceback from deep
inside torch, and the one table of the dtypes a config may name."""

from __future__ import annotations

import torch

from .config import ConfigError

DTYPES = {"float64": torch.float64, "float32": torch.float32}  # a config's dtype name -> torch dtype


def check_device_syntax(device: str) -> str:
    """Only the form of a device name, for work that runs elsewhere (Dask workers check CUDA themselves)."""
    if device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ConfigError(f"invalid --device {device!r}: must be 'cpu', 'cuda' or 'cuda:N'")


def resolve_device(device: str) -> str:
    """A device name checked against this machine ('cpu', 'cuda', 'cuda:N')."""
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"invalid --device {device!r}: CUDA is not available on this machine; use --device cpu")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"invalid --device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    raise ConfigError(f"invalid --device {device!r}: must be 'cpu', 'cuda' or 'cuda:N'")
