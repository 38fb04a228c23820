"""Per-sample norms of h and g along sampling trajectories: the collector behind :mod:`diffstyle_lab.stats.estimators`.

:class:`NormCollector` (a sampler callback) keeps only per-sample scalars, never a feature map;
:class:`NormTable` holds them (n×T per quantity); :func:`collect` streams the sampler over n samples in
resumable batches. :mod:`diffstyle_lab.stats.estimators` re-exports the public names.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import fileio, maths
from ..sampling import (InjectionConfig, Inversion, StepInfo, ddim_invert, generate, noise, noise_clip_x0,  # noqa: F401
                        reverse, timestep_grid)          # noise: also stats.noise

PHASES = {"reverse": ("generate", "inject"), "invert": ("invert",), "generate": ("generate",), "inject": ("inject",)}
TINY = 1e-300


# ---------------------------------------------------------------------------------------------
# Mixing settings for r_alt

@dataclasses.dataclass(frozen=True)
class MixSetting:
    """One way of making h̃ from h^(i) and another sample's h^(j): ``mix_h(h_i, h_j, gamma, method)``."""

    name: str
    method: str
    gamma: float

    def __post_init__(self):
        if self.method not in maths.MIX_RULES:
            raise ValueError(f"MixSetting {self.name!r}: method={self.method!r}; choose one of {maths.mix_methods()}")
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma)):
            raise ValueError(f"MixSetting {self.name!r}: gamma={self.gamma!r} must be a finite number")
        if not self.name or any(c in self.name for c in "[],"):
            raise ValueError(f"MixSetting name {self.name!r}: must be non-empty without '[', ']' or ','")


def alt_settings(gamma: float = 0.3) -> tuple[MixSetting, ...]:
    """One setting per mixing rule of :data:`~diffstyle_lab.maths.MIX_RULES` (§6/§8): replace (h̃ = h^(j)),
    add (h̃ = h^(i) + h^(j), the paper's "add"), lerp, slerp and normalised Slerp with content share γ (the
    paper's 0.3 by default); a rule's ``ablation`` fixes its γ (γ 1 where the rule ignores it)."""
    return tuple(MixSetting(r.name, r.name, float(r.ablation.get("gamma", gamma) if r.uses_gamma else 1.0))
                 for r in maths.MIX_RULES.values() if r.ablation is not None)


# ---------------------------------------------------------------------------------------------
# Derangements

def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation π of 0…n−1 with π(i) ≠ i for every i (rejection sampling)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


def derangements(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k independent uniformly random derangements of 0…n−1 (a k×n array; rejection sampling, vectorised)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    out = np.empty((k, n), dtype=np.int64)
    todo = np.arange(k)
    while len(todo):
        p = rng.permuted(np.broadcast_to(np.arange(n), (len(todo), n)), axis=1)
        ok = ~np.any(p == np.arange(n), axis=1)
        out[todo[ok]] = p[ok]
        todo = todo[~ok]
    return out


def _batch_rng(seed: int, start: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(start), 7]))


# ---------------------------------------------------------------------------------------------
# The collector (a sampler callback)

class NormCollector:
    """Sampler callback recording per-sample, per-timestep scalars as float64 arrays (n·T·k numbers, ``numel()``):

    * ``h``, ``g`` — ‖h^(i)‖, ‖g^(i)‖ (L2 over C·H·W; ``g`` is NaN when the sampler could not read it);
    * ``cos_pair`` — cos(h^(i), h^(π(i))), π a seeded random derangement of the batch;
    * per :class:`MixSetting` s: ``h_tilde[s]`` = ‖mix_h(h^(i), h^(π(i)), γ, method)‖ and ``energy[s]`` =
      ‖h̃−h‖²/‖h‖² (mixed in float64, so normalised Slerp keeps ‖h̃‖ = ‖h‖ to rounding);
    * with ``injection=True``: ``h_tilde``, ``energy`` and ``cos_content`` (cos(h, h^content)) of the
      sampler's own h̃, NaN outside the editing interval.

    ``phase``: which model evaluations count ("reverse" = generation and injection (default), "invert",
    "generate", "inject"). A batch ends at :meth:`end_batch`, at a repeated timestep or a new batch size; every
    batch must visit the same timesteps. One-sample batches get NaN for the pair quantities.
    Use: ``generate(m, x_T, callbacks=[col])``, then ``col.table()``.
    """

    def __init__(self, settings: Sequence[MixSetting] | None = None, *, injection: bool = False,
                 phase: str = "reverse", seed: int = 0, start: int = 0):
        if phase not in PHASES:
            raise ValueError(f"phase={phase!r}; choose one of {tuple(PHASES)}")
        self.settings = tuple(alt_settings() if settings is None else settings)
        names = [s.name for s in self.settings]
        if len(set(names)) != len(names):
            raise ValueError(f"setting names repeat: {names}")
        self.injection = bool(injection)
        self.phase = phase
        self.seed = int(seed)
        self.quantities = tuple(["h", "g", "cos_pair"] + [f"h_tilde[{s.name}]" for s in self.settings]
                                + [f"energy[{s.name}]" for s in self.settings]
                                + (["h_tilde", "energy", "cos_content"] if self.injection else []))
        self._start = int(start)        # sample index of the current batch's first sample
        self._done: dict[str, list[np.ndarray]] = {q: [] for q in self.quantities}
        self._ts: np.ndarray | None = None
        self._cur: dict[int, dict[str, np.ndarray]] = {}
        self._cur_b = 0
        self._perm: np.ndarray | None = None

    # -- recording ------------------------------------------------------------------------------
    def __call__(self, info: StepInfo) -> None:
        if info.phase not in PHASES[self.phase] or info.h is None:
            return
        h = _flat(info.h)
        b = h.shape[0]
        if self._cur and (info.t in self._cur or b != self._cur_b):
            self.end_batch()
        if not self._cur:
            self._cur_b = b
            self._perm = derangement(b, _batch_rng(self.seed, self._start)) if b >= 2 else None
        hn2 = (h * h).sum(1)
        v = {"h": hn2.sqrt().numpy()}           # quantities not measured here (no g, no pair, not editing): NaN
        if info.g is not None:
            v["g"] = _flat(info.g).norm(dim=1).numpy()
        if self._perm is not None:
            hp = h[torch.from_numpy(self._perm)]
            v["cos_pair"] = _cos(h, hp)
            for s in self.settings:
                mixed = maths.mix_h(h, hp, s.gamma, s.method)
                v[f"h_tilde[{s.name}]"] = mixed.norm(dim=1).numpy()
                v[f"energy[{s.name}]"] = (((mixed - h) ** 2).sum(1) / hn2.clamp_min(TINY)).numpy()
        if self.injection and info.h_tilde is not None:
            ht = _flat(info.h_tilde)
            v["h_tilde"] = ht.norm(dim=1).numpy()
            v["energy"] = (((ht - h) ** 2).sum(1) / hn2.clamp_min(TINY)).numpy()
            if info.h_content is not None:
                v["cos_content"] = _cos(h, _flat(info.h_content).expand_as(h))
        nan = np.full(b, np.nan)
        self._cur[int(info.t)] = {q: np.asarray(v.get(q, nan), dtype=np.float64).copy() for q in self.quantities}

    def end_batch(self) -> None:
        """Close the current batch: its per-step values become B×T arrays (columns by ascending t)."""
        if not self._cur:
            return
        ts = np.array(sorted(self._cur))
        if self._ts is None:
            self._ts = ts
        elif not np.array_equal(ts, self._ts):
            raise ValueError(f"batch starting at sample {self._start} visited {len(ts)} timesteps "
                             f"{short_grid(ts)} but the first batch visited {len(self._ts)} {short_grid(self._ts)}; "
                             "use one grid (steps, spacing) for every batch of a collector")
        for q in self.quantities:
            self._done[q].append(np.stack([self._cur[t][q] for t in ts], axis=1))
        self._start += self._cur_b
        self._cur, self._perm = {}, None

    # -- results --------------------------------------------------------------------------------
    def numel(self) -> int:
        """How many numbers the collector holds (finished and current batches): n·T·k."""
        done = sum(a.size for arrs in self._done.values() for a in arrs)
        return done + sum(a.size for step in self._cur.values() for a in step.values())

    def table(self, model: str = "", source: str = "") -> "NormTable":
        """All finished batches (the current one is closed first) as a :class:`NormTable`."""
        self.end_batch()
        if self._ts is None:
            raise ValueError("the collector has recorded nothing: pass it to a sampler as callbacks=[collector] "
                             f"(it listens to phase {self.phase!r})")
        vals = {q: np.concatenate(a, axis=0) for q, a in self._done.items()}
        return NormTable(self._ts.copy(), vals, model=model, source=source or self.phase, settings=self.settings)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.detach().flatten(1).to("cpu", torch.float64)


def _cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(TINY)).numpy()


def short_grid(ts) -> str:
    ts = list(map(int, ts))
    return str(ts) if len(ts) <= 6 else f"[{ts[0]}, {ts[1]}, …, {ts[-1]}]"


# ---------------------------------------------------------------------------------------------
# Tables of scalars

@dataclasses.dataclass
class NormTable:
    """Per-sample, per-timestep scalars: ``values[q]`` is n×T for the ascending timesteps ``ts``."""

    ts: np.ndarray
    values: dict[str, np.ndarray]
    model: str = ""
    source: str = ""
    settings: tuple[MixSetting, ...] = ()
    inject_method: str | None = None

    def __post_init__(self):
        self.ts = np.asarray(self.ts, dtype=np.int64)
        shapes = {q: np.shape(v) for q, v in self.values.items()}
        for q, s in shapes.items():
            if len(s) != 2 or s[1] != len(self.ts):
                raise ValueError(f"NormTable: values[{q!r}] has shape {s}, expected n×{len(self.ts)} "
                                 "(one column per t)")
        if len({s[0] for s in shapes.values()}) > 1:
            raise ValueError(f"NormTable: quantities have different sample counts: {shapes}")

    @property
    def n(self) -> int:
        return next(iter(self.values.values())).shape[0] if self.values else 0

    def __getitem__(self, q: str) -> np.ndarray:
        if q not in self.values:
            raise KeyError(f"{q!r} was not recorded; the table has {sorted(self.values)}")
        return self.values[q]

    def numel(self) -> int:
        return sum(v.size for v in self.values.values())

    @staticmethod
    def concat(parts: Sequence["NormTable"]) -> "NormTable":
        if not parts:
            raise ValueError("no tables to concatenate")
        a = parts[0]
        for p in parts[1:]:
            if not np.array_equal(p.ts, a.ts) or set(p.values) != set(a.values):
                raise ValueError("tables to concatenate must share timesteps and quantities")
        return NormTable(a.ts, {q: np.concatenate([p.values[q] for p in parts]) for q in a.values},
                         a.model, a.source, a.settings, a.inject_method)

    def save(self, path) -> None:
        """Write an ``.npz`` (atomically: :func:`diffstyle_lab.fileio.write_npz`)."""
        meta = {"model": self.model, "source": self.source, "inject_method": self.inject_method,
                "settings": [dataclasses.asdict(s) for s in self.settings]}
        fileio.write_npz(path, ts=self.ts, meta=json.dumps(meta), **{"q:" + q: v for q, v in self.values.items()})

    @staticmethod
    def load(path) -> "NormTable":
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            vals = {k[2:]: z[k] for k in z.files if k.startswith("q:")}
            return NormTable(z["ts"], vals, meta["model"], meta["source"],
                             tuple(MixSetting(**s) for s in meta["settings"]), meta.get("inject_method"))


# ---------------------------------------------------------------------------------------------
# Streaming over n samples: batches, progress, resume

SOURCES = ("generate", "invert", "inject")


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """[start, stop) of each batch; a final batch of one sample is merged into the one before it
    (a derangement needs two samples)."""
    if n < 3:
        raise ValueError(f"n={n}: the statistics need at least 3 samples")
    if batch_size < 2:
        raise ValueError(f"batch_size={batch_size}: batches need at least 2 samples (pairs are drawn within a batch)")
    b = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if b[-1][1] - b[-1][0] == 1:
        b[-2:] = [(b[-2][0], n)]
    return b


class _HTrajectory:
    """Temporary per-batch recorder of h (feature maps) to serve as h^content; discarded after the batch."""

    def __init__(self):
        self.h = {}

    def __call__(self, info):
        if info.phase == "generate":
            self.h[int(info.t)] = info.h.detach().clone()

    def inversion(self, x_T, spacing):
        ts = sorted(self.h)
        return Inversion(x_T, torch.stack([self.h[t] for t in ts], 1), ts, ts, spacing)


def collect(model, n: int | None = None, *, source: str = "generate", steps: int = 50, spacing: str = "authors",
            batch_size: int = 16, seed: int = 0, settings: Sequence[MixSetting] | None = None, gamma: float = 0.3,
            images=None, config: InjectionConfig | None = None, out_dir=None, progress: bool = True,
            callbacks: Sequence[Callable] = (), also_generate: list | None = None) -> NormTable:
    """Run the sampler over n samples in batches with a :class:`NormCollector` and return the table.

    ``source``: ``"generate"`` — DDIM generation (η = 0) from x_T seeded per sample (:func:`noise`);
    ``"invert"`` — DDIM inversion of ``images`` (an N×C×H×W tensor in [−1, 1], or a function
    ``(start, stop) -> tensor`` with ``n`` given); ``"inject"`` — content injection with ``config``
    (default :class:`InjectionConfig`; its ``steps``/``spacing`` win): style x_T of sample i, content h of
    sample π(i) in the batch (the derangement the static mixings use), from a plain generation from that
    sample's x_T (or the inversions of ``images``); the sampler's own h̃ is recorded too.
    ``settings`` (default :func:`alt_settings` (gamma)): the static mixings for r_alt. ``callbacks`` go to
    the sampler after the collector.

    With ``out_dir``, each batch is written to ``out_dir/batch_<start>_<stop>.npz`` and a rerun skips
    finished batches (resume); ``out_dir/meta.json`` keeps the parameters and a rerun with others is refused.

    ``also_generate`` (a list; ``source="inject"``, no ``images``, no ``out_dir``): the content generations
    are exactly those of ``source="generate"`` with the same n, batch_size, seed and grid, so each batch's
    ``"generate"`` table is appended to it: ``NormTable.concat(also_generate)``, without generating twice.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}; choose one of {SOURCES}")
    settings = tuple(alt_settings(gamma) if settings is None else settings)
    if images is not None and not callable(images):
        if not torch.is_tensor(images) or images.dim() != 4:
            raise ValueError("images: pass an N×C×H×W tensor in [-1, 1] or a function (start, stop) -> tensor")
        if n is not None and n > len(images):
            raise ValueError(f"n={n} but only {len(images)} images were given")
        n = len(images) if n is None else n
    if n is None:
        raise ValueError("n: say how many samples to collect")
    if also_generate is not None and (source != "inject" or images is not None or out_dir is not None):
        raise ValueError("also_generate: only with source='inject', no images and no out_dir (the generations "
                         "it shares are the content trajectories of such a run)")
    if source == "invert" and images is None:
        raise ValueError("source='invert' needs images to invert")
    cfg = None
    if source == "inject":
        cfg = dataclasses.replace(config or InjectionConfig(steps=steps, spacing=spacing)).validate(model.T)
        steps, spacing = cfg.steps, cfg.spacing
    timestep_grid(steps, spacing, model.T)
    bounds = batch_bounds(n, batch_size)
    label = model.source
    out = None
    if out_dir is not None:
        digest = None if images is None else "function" if callable(images) else \
            fileio.tensor_digest({"images": images})
        out = _open_run(out_dir, {
            "model": label, "weights_sha256": model.weights_hash, "source": source, "steps": steps,
            "spacing": spacing, "seed": seed, "batch_size": batch_size,
            "settings": [dataclasses.asdict(s) for s in settings],
            "injection": None if cfg is None else cfg.to_dict(), "images": digest})
    parts = []
    bar = tqdm(total=n, desc=f"stats ({source})", unit="sample", disable=not progress)
    for start, stop in bounds:
        f = None if out is None else out / f"batch_{start:07d}_{stop:07d}.npz"
        if f is not None and f.exists():
            parts.append(NormTable.load(f))
            bar.update(stop - start)
            continue
        col = NormCollector(settings, injection=source == "inject",
                            phase="invert" if source == "invert" else "reverse", seed=seed, start=start)
        cbs = [col, *callbacks]
        if source == "generate":
            generate(model, noise(model, start, stop, seed), steps, spacing, t_boost=0, progress=False, callbacks=cbs,
                     clip_x0=noise_clip_x0(model))     # from pure noise: deterministic DDIM (the paper's trajectories), the stored clip_x0
        elif source == "invert":
            x0 = images(start, stop) if callable(images) else images[start:stop]
            ddim_invert(model, x0, steps, spacing, progress=False, callbacks=cbs)
        else:
            perm = torch.from_numpy(derangement(stop - start, _batch_rng(seed, start)))
            if images is not None:
                x0 = images(start, stop) if callable(images) else images[start:stop]
                inv = ddim_invert(model, x0, steps, spacing, progress=False)
                style_xT, content = inv.x_T, inv.select(perm)
            else:
                style_xT = noise(model, start, stop, seed)
                rec = _HTrajectory()
                gcols = [] if also_generate is None else [NormCollector(settings, seed=seed, start=start)]
                generate(model, style_xT, steps, spacing, t_boost=0, progress=False, callbacks=[rec, *gcols],
                         clip_x0=noise_clip_x0(model))
                for gcol in gcols:
                    also_generate.append(gcol.table(model=label, source="generate"))
                content = rec.inversion(style_xT, spacing).select(perm)
                del rec
            reverse(model, style_xT, content, cfg, progress=False, callbacks=cbs)
        part = col.table(model=label, source=source)
        part.inject_method = None if cfg is None else cfg.method
        if f is not None:
            part.save(f)
        parts.append(part)
        bar.update(stop - start)
    bar.close()
    return NormTable.concat(parts)


def _open_run(out_dir, meta: dict) -> Path:
    """``out_dir`` (created), after writing ``meta.json`` there or checking that the one there equals ``meta``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mp = out / "meta.json"
    if not mp.exists():
        fileio.write_json(mp, meta)
        return out
    old = fileio.read_json(mp, fix="; use another out_dir or delete that folder")
    diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
    if diff:
        raise ValueError(f"{out} holds a run with other parameters ({', '.join(diff)} differ); "
                         "use another out_dir or delete that folder")
    return out
