"""On-disk cache of DDIM inversions, keyed by a hash of (the ε-provider's identity — for a pixel model its
weights and scheduler config —, image pixels, grid and, where a run fixes it, the batch size the inversion is
computed at). Any :class:`~diffstyle_lab.sampling.EpsProvider` with a ``cache_identity()`` can use it; the
key of any provider other than the plain pixel one also holds its class, so two providers never share an entry.

Entries are safetensors files (loading one never runs code), used only if the stored key, tensor
names, shapes and dtypes (against the model), timesteps, finite values and SHA-256 all match; anything
else is recomputed and rewritten. Writes are atomic; an unwritable folder gives one warning.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from .config import timestep_grid
from .fileio import atomic_write, sha256_hex, tensor_bytes, tensor_digest
from .sampling import Inversion, PixelEps, ddim_invert, eps_provider

FORMAT = 2
TENSORS = ("x_T", "h")


def default_cache_dir() -> Path:
    env = os.environ.get("DIFFSTYLE_LAB_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "diffstyle_lab" / "inversions"


def invert_in_batches(model, x0: torch.Tensor, steps: int = 50, spacing: str = "authors", record_last: bool = True,
                      batch: int | None = None, progress: bool = True):
    """:func:`~diffstyle_lab.sampling.ddim_invert` of ``x0``; with ``batch``, every U-Net call sees
    exactly ``batch`` images (the last chunk padded by repeating its last image). float32 kernels can
    round differently per batch size, never per position in a batch: fixing the size makes an image's
    inversion a function of the image and ``batch`` alone."""
    if batch is None or len(x0) == 0:
        return ddim_invert(model, x0, steps, spacing, record_last=record_last, progress=progress)
    parts = []
    for k in range(0, len(x0), batch):
        chunk = x0[k:k + batch]
        real = len(chunk)
        if real < batch:
            chunk = torch.cat([chunk, chunk[-1:].expand(batch - real, *chunk.shape[1:])])
        parts.append(ddim_invert(model, chunk, steps, spacing, record_last=record_last,
                                 progress=progress).select(slice(0, real)))
    return Inversion.cat(parts)


def provider_identity(net) -> dict:
    """What an inversion by the ε-provider ``net`` depends on besides the image and the grid, for the cache key:
    the plain pixel provider's ``cache_identity()`` as it is (the keys of format 2), any other provider's
    under its class name."""
    if type(net) is PixelEps:
        return net.cache_identity()
    if not hasattr(net, "cache_identity"):
        raise ValueError(f"the ε-provider {type(net).__name__} has no cache_identity(): give it one (a JSON-able "
                         "dict of everything its inversion depends on) or run without the inversion cache")
    return {"provider": f"{type(net).__module__}.{type(net).__qualname__}", "identity": net.cache_identity()}


def provider_digest(net) -> str:
    """SHA-256 of :func:`provider_identity`."""
    return sha256_hex(_dumps(provider_identity(net), net))


def _dumps(meta: dict, net) -> str:
    try:
        return json.dumps(meta, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"cache_identity() of the ε-provider {type(net).__name__} is not JSON-able ({e}); return "
                         "plain numbers, strings, lists and dicts") from None


def probe_h_shape(net, image: torch.Tensor) -> tuple:
    """The shape of what the ε-provider ``net`` stores per timestep for one image like ``image`` (one real
    inversion pass at t = 0 on zeros)."""
    x = net.check_x0(torch.zeros((1, *image.shape), dtype=image.dtype, device=image.device), "images")
    with torch.no_grad():
        return tuple(net.invert_eps(x, 0)[1].shape[1:])


def h_shape(model, image_shape: tuple) -> tuple:
    """The shape of h (C'×h×w) the model gives for one image of ``image_shape`` (C×H×W): a forward
    pass on the meta device (shapes only, no arithmetic), or one real pass if the layout needs it."""
    from torch.func import functional_call
    hu, u = model.hooked, model.unet
    try:
        meta = {k: torch.empty_like(v, device="meta") for k, v in list(u.named_parameters()) + list(u.named_buffers())}
        with torch.no_grad(), hu.record("h") as rec:
            functional_call(u, meta, (torch.empty((1, *image_shape), device="meta", dtype=hu.dtype),
                                      torch.zeros(1, dtype=torch.long, device="meta")))
    except Exception:   # a layout that cannot run on the meta device
        with torch.no_grad(), hu.record("h") as rec:
            hu.eps(torch.zeros((1, *image_shape), device=hu.device, dtype=hu.dtype), 0)
    return tuple(rec["h"].shape[1:])


class InversionCache:
    """``InversionCache(dir)``; pass it as ``cache=`` to :func:`cached_invert` or :func:`~diffstyle_lab.sampling.inject`."""

    def __init__(self, directory=None):
        self.dir = Path(directory) if directory is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0
        self.writable = True
        self._h_shapes: dict = {}

    # -- keys ------------------------------------------------------------------------------
    @staticmethod
    def key(model, image: torch.Tensor, steps: int, spacing: str, record_last: bool, batch: int | None = None) -> str:
        """The entry of ``image`` (C×H×W, in the provider's space) inverted by ``model`` (a DiffusionModel or an
        ε-provider: :func:`provider_identity`)."""
        net = eps_provider(model)
        meta = {"format": FORMAT, "grid": timestep_grid(steps, spacing, net.model.T), "spacing": spacing,
                "record_last": record_last, "dtype": str(image.dtype), "batch": batch, **provider_identity(net)}
        return sha256_hex(_dumps(meta, net), str(tuple(image.shape)), tensor_bytes(image))

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.safetensors"

    def expected(self, model, image: torch.Tensor, steps: int, spacing: str, record_last: bool) -> dict:
        """What a true entry for ``image`` (C×H×W, in the model's dtype) holds: shapes, dtypes, timesteps."""
        net = eps_provider(model)
        grid = timestep_grid(steps, spacing, net.model.T)
        ts = grid if record_last else grid[:-1]
        sig = (provider_digest(net), tuple(image.shape), str(image.dtype))
        if sig not in self._h_shapes:
            self._h_shapes[sig] = (h_shape(net.model, tuple(image.shape)) if type(net) is PixelEps
                                   else probe_h_shape(net, image))
        return {"x_T": (tuple(image.shape), image.dtype), "h": ((len(ts),) + self._h_shapes[sig], image.dtype),
                "ts": list(ts)}

    # -- read / write ----------------------------------------------------------------------
    def load(self, key: str, expect: dict | None = None):
        """The cached ``(x_T, h, ts)`` for ``key``, or None if absent or not trustworthy.

        ``expect`` (see :meth:`expected`) adds the checks against the model: shapes, dtypes, timesteps."""
        from safetensors import safe_open
        if not self._exists(key):
            return None
        p = self.path(key)
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
                t = {n: f.get_tensor(n) for n in f.keys()}
            why = self._mismatch(key, meta, t, expect)
            if why:
                raise ValueError(why)
            return t["x_T"], t["h"], json.loads(meta["ts"])
        except Exception as e:  # corrupt/mismatched: recompute, never trust or crash
            warnings.warn(f"inversion cache entry {p.name} is not trusted ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:160] if str(e) else ''}); recomputing it", stacklevel=3)
            return None

    @staticmethod
    def _mismatch(key, meta, t, expect) -> str | None:
        if set(t) != set(TENSORS):
            return f"holds tensors {sorted(t)}, expected {list(TENSORS)}"
        if meta.get("key") != key:
            return "stored under another key"
        if meta.get("format") != str(FORMAT):
            return f"format {meta.get('format')}, expected {FORMAT}"
        ts = json.loads(meta.get("ts", "null"))
        if not isinstance(ts, list) or t["h"].dim() < 1 or t["h"].shape[0] != len(ts):
            return "h does not hold one entry per timestep"
        if expect is not None:
            for n in TENSORS:
                shape, dtype = expect[n]
                if tuple(t[n].shape) != tuple(shape) or t[n].dtype != dtype:
                    return f"{n} is {tuple(t[n].shape)} {t[n].dtype}, the model gives {tuple(shape)} {dtype}"
            if ts != expect["ts"]:
                return "timesteps differ from the grid"
        if meta.get("sha256") != tensor_digest(t):
            return "tensor checksum does not match"
        if not all(torch.isfinite(v).all() for v in t.values()):
            return "non-finite values"
        return None

    def save(self, key: str, x_T: torch.Tensor, h: torch.Tensor, ts) -> None:
        if not self.writable:
            return
        from safetensors.torch import save_file

        p = self.path(key)
        t = {"x_T": x_T.detach().cpu().contiguous(), "h": h.detach().cpu().contiguous()}
        meta = {"key": key, "format": str(FORMAT), "ts": json.dumps(list(ts)), "sha256": tensor_digest(t)}
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(p, lambda tmp: save_file(t, tmp, metadata=meta))
        except OSError as e:
            self.writable = False
            warnings.warn(f"inversion cache folder {self.dir} cannot be written ({e.strerror or type(e).__name__}); "
                          "running without storing inversions (pass another cache folder to keep them)", stacklevel=3)

    # -- the cached inversion --------------------------------------------------------------
    def invert(self, model, x0: torch.Tensor, steps: int = 50, spacing: str = "authors",
               record_last: bool = True, progress: bool = True, batch: int | None = None):
        """:func:`ddim_invert`, image by image through the cache; misses run as one batch, or with
        ``batch`` in batches of exactly that size (see :func:`invert_in_batches`; the key records it).
        ``model``: a DiffusionModel or an ε-provider with a ``cache_identity()``; ``x0`` in its space."""
        keys = [self.key(model, img, steps, spacing, record_last, batch) for img in x0]
        expect = None
        found = []
        for k in keys:
            if expect is None and self._exists(k):    # the shape probe runs only once an entry exists
                expect = self.expected(model, x0[0], steps, spacing, record_last)
            found.append(self.load(k, expect))
        miss = [i for i, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        if miss:
            inv = invert_in_batches(model, x0[miss], steps, spacing, record_last, batch, progress)
            for j, i in enumerate(miss):
                self.save(keys[i], inv.x_T[j], inv.h[j], inv.ts)
                found[i] = (inv.x_T[j].cpu(), inv.h[j].cpu(), inv.ts)
        m = eps_provider(model).model
        dev, dt = (m.device, m.hooked.dtype) if hasattr(m, "hooked") else (x0.device, x0.dtype)
        return Inversion(torch.stack([f[0] for f in found]).to(dev, dt), torch.stack([f[1] for f in found]).to(dev, dt),
                         list(found[0][2]), timestep_grid(steps, spacing, m.T), spacing)

    def _exists(self, key) -> bool:
        try:
            return self.path(key).is_file()
        except OSError:
            return False

    # -- housekeeping ----------------------------------------------------------------------
    def size(self) -> dict:
        """``{"entries": n, "bytes": total}`` of the cache folder."""
        files = list(self.dir.glob("*/*.safetensors")) if self.dir.exists() else []
        return {"entries": len(files), "bytes": sum(f.stat().st_size for f in files), "dir": str(self.dir)}

    def verify(self) -> list[str]:
        """What is wrong in the cache folder (empty: nothing): every entry must open, be stored under its own
        key and hold exactly ``x_T`` and ``h`` matching its checksum, with finite values; temporary files
        (of writers killed mid-write) are listed too. Reads only safetensors (never unpickles)."""
        from safetensors import safe_open
        problems = [f"{f}: temporary file" for f in self.dir.glob("*/*.tmp")] if self.dir.exists() else []
        for f in sorted(self.dir.glob("*/*.safetensors")) if self.dir.exists() else []:
            try:
                with safe_open(str(f), framework="pt") as s:
                    meta, t = s.metadata() or {}, {n: s.get_tensor(n) for n in s.keys()}
                why = self._mismatch(f.stem, meta, t, None)
            except Exception as e:  # noqa: BLE001 - a damaged file is a finding, not a crash
                why = f"unreadable ({type(e).__name__})"
            if why:
                problems.append(f"{f}: {why}")
        return problems

    def clear(self) -> None:
        for f in self.dir.glob("*/*.safetensors"):
            f.unlink()


def cached_invert(model, x0: torch.Tensor, steps: int = 50, spacing: str = "authors", record_last: bool = True,
                  progress: bool = True, cache: InversionCache | None = None) -> Inversion:
    """:func:`~diffstyle_lab.sampling.ddim_invert` of ``x0`` (checked as the sampler checks it), read from and
    written to ``cache`` image by image; ``cache=None`` inverts directly. ``model``: a DiffusionModel or an
    ε-provider (``x0`` in its space, as for ddim_invert)."""
    if cache is None:
        return ddim_invert(model, x0, steps, spacing, record_last=record_last, progress=progress)
    return cache.invert(model, eps_provider(model).check_x0(x0), steps=steps, spacing=spacing,
                        record_last=record_last, progress=progress)
