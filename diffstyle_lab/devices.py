"""The one rule that picks the device (command line, notebooks, hosted cell): ``None`` →
``$DIFFSTYLE_LAB_DEVICE``, else ``"auto"`` → ``cuda`` if visible, else ``mps``, else ``cpu``. An explicit
device that is not available is a one-line :class:`DeviceError` that says what to use instead.
"""

from __future__ import annotations

import os

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
ENV = "DIFFSTYLE_LAB_DEVICE"


class DeviceError(ValueError):
    """The requested device is unknown or not available on this machine."""


def _mps_available(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(device: str | None = None, what: str = "device") -> str:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` by the rule above; ``what`` names the setting in
    errors (``"--device"`` on the command line)."""
    import torch
    source = what
    if device is None or not str(device).strip():
        env = os.environ.get(ENV)
        device, source = (env, f"${ENV}") if env else ("auto", what)
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available(torch) else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "mps":
        if not _mps_available(torch):
            raise DeviceError(f"{source}={device}: no Apple-silicon GPU (MPS) is available on this machine; "
                              "use cpu or auto")
        return "mps"
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise DeviceError(f"{source}={device}: write cuda or cuda:N (N a device number)")
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise DeviceError(f"{source}={device}: no CUDA device is visible (torch {torch.__version__}, "
                              f"CUDA build: {torch.version.cuda or 'none'}); use cpu or auto")
        if index and int(index) >= n:
            raise DeviceError(f"{source}={device}: only {n} CUDA device(s) are visible (cuda:0…cuda:{n - 1})")
        return name
    raise DeviceError(f"{source}={device} is not a device; choose {', '.join(DEVICE_CHOICES)} (or cuda:N)")
