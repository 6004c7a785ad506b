"""Devices and dtypes by name: a clear message at the edge instead of a CUDA traceback from deep
inside torch, and the one table of the dtypes a config may name."""

from __future__ import annotations

import torch

from .config import bad_value

__all__ = ["DTYPES", "check_device_syntax", "resolve_device"]

DTYPES = {"float64": torch.float64, "float32": torch.float32}  #: a config's dtype name -> torch dtype


def check_device_syntax(device: str) -> str:
    """Only the form of a device name, for work that runs elsewhere (Dask workers check CUDA themselves)."""
    if device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise bad_value("--device", "must be 'cpu', 'cuda' or 'cuda:N'", device)


def resolve_device(device: str, dtype: str | None = None) -> str:
    """A device name checked against this machine ('cpu', 'cuda', 'cuda:N', 'mps'), or a ConfigError
    naming --device before anything runs or is written. ``dtype`` (a DTYPES name), when given, is
    checked against the device too: MPS has no float64."""
    if device == "cpu":
        return "cpu"
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise bad_value("--device", "must be a device of this machine", device,
                            hint="CUDA is not available on this machine; use --device cpu")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise bad_value("--device", f"must be cuda:0 .. cuda:{torch.cuda.device_count() - 1}", device,
                            hint=f"only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise bad_value("--device", "must be a device of this machine", device,
                            hint="MPS is not available on this machine; use --device cpu")
        if dtype == "float64":
            raise bad_value("--device", "must support the dtype float64", device,
                            hint="MPS has no float64; use --dtype float32 or --device cpu")
        return device
    raise bad_value("--device", "must be 'cpu', 'cuda', 'cuda:N' or 'mps'", device)
