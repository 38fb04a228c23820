"""On-disk cache of DDIM inversions, keyed by a hash of (model weights, image pixels, grid,
scheduler config).

Entries are safetensors files (tensors + JSON metadata): loading one never runs code, so a cache
folder shared by several users is not a way to execute anything. A corrupt, truncated or
mismatched entry is recomputed and rewritten, never trusted; writes are atomic (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch

FORMAT = 1


def default_cache_dir() -> Path:
    env = os.environ.get("DIFFSTYLE_LAB_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "diffstyle_lab" / "inversions"


class InversionCache:
    """``InversionCache(dir)``; pass it as ``cache=`` to :func:`ddim_invert` or :func:`inject`."""

    def __init__(self, directory=None):
        self.dir = Path(directory) if directory is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    # -- keys ------------------------------------------------------------------------------
    @staticmethod
    def key(model, image: torch.Tensor, steps: int, spacing: str, record_last: bool) -> str:
        from .sampling import timestep_grid
        h = hashlib.sha256()
        meta = {"format": FORMAT, "weights": model.weights_hash, "grid": timestep_grid(steps, spacing, model.T),
                "spacing": spacing, "record_last": record_last, "dtype": str(image.dtype),
                "scheduler": {k: model.scheduler_config.get(k) for k in
                              ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "trained_betas")}}
        h.update(json.dumps(meta, sort_keys=True).encode())
        img = image.detach().to("cpu").contiguous()
        h.update(str(tuple(img.shape)).encode())
        h.update(img.view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.safetensors"

    # -- read / write ----------------------------------------------------------------------
    def load(self, key: str, expect_shape=None):
        """The cached ``(x_T, h, ts)`` for ``key``, or None if absent or not trustworthy."""
        from safetensors import safe_open
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
                x_T, h = f.get_tensor("x_T"), f.get_tensor("h")
            ts = json.loads(meta["ts"])
            ok = (meta.get("key") == key and int(meta.get("format", -1)) == FORMAT and
                  h.shape[0] == len(ts) and torch.isfinite(x_T).all() and torch.isfinite(h).all() and
                  (expect_shape is None or tuple(x_T.shape) == tuple(expect_shape)))
            if not ok:
                raise ValueError("metadata or shapes do not match the key")
            return x_T, h, ts
        except Exception as e:  # corrupt/mismatched: recompute, never trust or crash
            warnings.warn(f"inversion cache entry {p.name} is unreadable or does not match ({type(e).__name__}); "
                          "recomputing it", stacklevel=3)
            return None

    def save(self, key: str, x_T: torch.Tensor, h: torch.Tensor, ts) -> None:
        from safetensors.torch import save_file
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_file({"x_T": x_T.detach().cpu().contiguous(), "h": h.detach().cpu().contiguous()}, tmp,
                      metadata={"key": key, "format": str(FORMAT), "ts": json.dumps(list(ts))})
            os.replace(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # -- the cached inversion --------------------------------------------------------------
    def invert(self, model, x0: torch.Tensor, steps: int = 50, spacing: str = "authors",
               record_last: bool = True, progress: bool = True):
        """:func:`ddim_invert`, image by image through the cache; misses run as one batch."""
        from .sampling import Inversion, ddim_invert, timestep_grid
        keys = [self.key(model, x0[i], steps, spacing, record_last) for i in range(len(x0))]
        found = [self.load(k, expect_shape=x0.shape[1:]) for k in keys]
        miss = [i for i, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        if miss:
            inv = ddim_invert(model, x0[miss], steps, spacing, record_last=record_last, progress=progress)
            for j, i in enumerate(miss):
                self.save(keys[i], inv.x_T[j], inv.h[j], inv.ts)
                found[i] = (inv.x_T[j].cpu(), inv.h[j].cpu(), inv.ts)
        dev, dt = model.device, model.hooked.dtype
        return Inversion(torch.stack([f[0] for f in found]).to(dev, dt), torch.stack([f[1] for f in found]).to(dev, dt),
                         list(found[0][2]), timestep_grid(steps, spacing, model.T), spacing)

    # -- housekeeping ----------------------------------------------------------------------
    def size(self) -> dict:
        """``{"entries": n, "bytes": total}`` of the cache folder."""
        files = list(self.dir.glob("*/*.safetensors")) if self.dir.exists() else []
        return {"entries": len(files), "bytes": sum(f.stat().st_size for f in files), "dir": str(self.dir)}

    def clear(self) -> None:
        for f in self.dir.glob("*/*.safetensors"):
            f.unlink()
