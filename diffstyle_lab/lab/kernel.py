"""The kernel manager the notebook runner gives papermill, so that a clean run prints nothing but the
runner's own table. Two lines used to appear on every run, and both are fixed where they come from:

* ``[IPKernelApp] WARNING | Kernel is running over TCP without encryption`` — ipykernel (≥ 7) logs it
  when its sockets use TCP without CurveZMQ keys. jupyter_client (≥ 8.10) can provision the keys
  itself (``transport_encryption``) for a kernelspec that declares ``supported_encryption: curve``
  (ipykernel's does); :class:`QuietKernelManager` asks for that (``"auto"``) wherever pyzmq has
  CurveZMQ, else uses IPC sockets on POSIX systems; only a Windows machine without CurveZMQ still
  gets the warning (TCP is then the only transport).
* ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.`` — jupyter_client's
  ``shutdown_kernel`` sends SIGINT before its shutdown request, to stop code that may still run;
  when the signal lands while the kernel handles a message, ipykernel logs it as an error. A
  notebook papermill has finished runs nothing, so the manager does not interrupt while shutting
  down (a kernel that does not stop is still sent SIGTERM, then SIGKILL, by jupyter_client); an
  interrupt at any other time (nbclient's cell timeout) is sent as before.

A real error in a notebook is untouched: papermill raises it and the runner prints it.
"""
from __future__ import annotations

import os

from jupyter_client.manager import AsyncKernelManager


def _encryption() -> str | None:
    try:
        import zmq
        return "auto" if zmq.has("curve") else None
    except ImportError:       # pragma: no cover  (jupyter_client needs pyzmq)
        return None


class QuietKernelManager(AsyncKernelManager):
    """:class:`jupyter_client.AsyncKernelManager` with transport encryption (or IPC) and no SIGINT at
    shutdown; see the module docstring."""

    def __init__(self, **kw):
        enc = _encryption()
        if enc:
            kw.setdefault("transport_encryption", enc)
        elif os.name == "posix":
            kw.setdefault("transport", "ipc")
        super().__init__(**kw)

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:          # called by shutdown_kernel: nothing is running, see above
            return
        await super()._async_interrupt_kernel()
