"""Hooked samplers: DDIM inversion that records h, plain DDIM generation, and the asymmetric
reverse process with content injection (method.md §4–7).

The loops are explicit and unrolled, diffusers-style; the maths of each step is in
:mod:`diffstyle_lab.maths`. All images are tensors in [−1, 1], B×C×H×W.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from . import maths
from .models import DiffusionModel

SPACINGS = ("authors", "leading", "trailing", "linspace")


# ---------------------------------------------------------------------------------------------
# Timestep grids

def timestep_grid(n: int, spacing: str = "authors", T: int = 1000) -> list[int]:
    """The ascending grid of ``n`` timesteps a sampler visits.

    * ``authors`` — t_k = int(k/(n−1)·(T−1)): 0, 20, 40, 61, …, 999 for n = 50 (the paper's code);
    * ``leading`` — diffusers' DDIM default: k·(T//n), k = 0…n−1 (0, 20, …, 980);
    * ``trailing`` — diffusers' trailing spacing: round(T − k·T/n) − 1 (19, 39, …, 999);
    * ``linspace`` — round(linspace(0, T−1, n)).
    """
    if not isinstance(n, int) or n < 2 or n > T:
        raise ValueError(f"steps={n!r}: need an integer between 2 and T={T}")
    if spacing == "authors":
        ts = [k * (T - 1) // (n - 1) for k in range(n)]
    elif spacing == "leading":
        ts = [k * (T // n) for k in range(n)]
    elif spacing == "trailing":
        ts = sorted(int(round(T - k * T / n)) - 1 for k in range(n))
    elif spacing == "linspace":
        ts = [int(round(k * (T - 1) / (n - 1))) for k in range(n)]
    else:
        raise ValueError(f"spacing={spacing!r} is unknown; choose one of {SPACINGS}")
    if len(set(ts)) != len(ts):
        raise ValueError(f"{n} steps with spacing={spacing!r} repeat a timestep; use fewer steps")
    return ts


# ---------------------------------------------------------------------------------------------
# Per-step records for collectors

@dataclasses.dataclass
class StepInfo:
    """What a sampler hands its callbacks after each model evaluation (tensors are detached).

    ``h_tilde`` is None outside the editing interval; ``g`` may be None (batch doubling).
    """

    phase: str          # "invert" | "generate" | "inject"
    step: int           # index of the step in the loop
    t: int
    x: torch.Tensor     # x_t the model saw
    h: torch.Tensor | None
    g: torch.Tensor | None
    h_tilde: torch.Tensor | None = None
    h_content: torch.Tensor | None = None


Callback = Callable[[StepInfo], None]


def _emit(callbacks, info):
    for cb in callbacks:
        cb(info)


def _check_finite(x, phase, step, t):
    if not maths.is_finite(x):
        raise FloatingPointError(
            f"{phase}: non-finite values (NaN or inf) appeared at step {step} (t={t}); stopped without "
            "returning a broken image. Check the input range ([-1, 1]), the model weights and γ/ω.")


def _bar(total, desc, progress):
    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


# ---------------------------------------------------------------------------------------------
# DDIM inversion

@dataclasses.dataclass
class Inversion:
    """x_T of an image and its recorded h trajectory h_t^content (one entry per grid t)."""

    x_T: torch.Tensor             # B×C×H×W
    h: torch.Tensor               # B×n×C'×h×w, h recorded at ``ts``
    ts: list[int]                 # the timesteps of the recorded h (ascending)
    grid: list[int]               # the inversion grid
    spacing: str

    def h_at(self, t: int) -> torch.Tensor:
        """h^content at t: the recorded value at the nearest grid t (ties go to the larger t)."""
        i = min(range(len(self.ts)), key=lambda k: (abs(self.ts[k] - t), -self.ts[k]))
        return self.h[:, i]

    def __len__(self):
        return self.x_T.shape[0]

    def select(self, idx) -> "Inversion":
        return Inversion(self.x_T[idx], self.h[idx], self.ts, self.grid, self.spacing)

    @staticmethod
    def cat(items: Sequence["Inversion"]) -> "Inversion":
        a = items[0]
        return Inversion(torch.cat([i.x_T for i in items]), torch.cat([i.h for i in items]), a.ts, a.grid, a.spacing)


def check_images(model: DiffusionModel, x: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not torch.is_tensor(x) or x.dim() != 4:
        raise ValueError(f"{name}: expected a B×C×H×W tensor in [-1, 1] (use diffstyle_lab.images.load_image)")
    s, c = model.sample_size, model.in_channels
    if x.shape[1] != c or x.shape[2] != s or x.shape[3] != s:
        raise ValueError(f"{name} have shape {tuple(x.shape)} but the model ({model.source}) works on "
                         f"{c}×{s}×{s}; load them with diffstyle_lab.images.load_image(path, size={s})")
    if not maths.is_finite(x):
        raise ValueError(f"{name} contain NaN or inf")
    from .images import check_range
    check_range(x, name)
    return x.to(model.device, model.hooked.dtype)


@torch.no_grad()
def ddim_invert(model: DiffusionModel, x0: torch.Tensor, steps: int = 50, spacing: str = "authors",
                record_last: bool = True, progress: bool = True, callbacks: Sequence[Callback] = (),
                cache=None) -> Inversion:
    """Deterministic DDIM inversion x_0 → x_T on a grid of ``steps`` points, recording h_t.

    The model is evaluated at the smaller t of each pair. ``record_last=True`` pays one more pass
    at t = T−1 so h^content exists there (the paper); ``False`` is the authors' code, which uses the
    nearest stored t. With ``cache`` (an :class:`~diffstyle_lab.cache.InversionCache`), results are
    read from and written to disk per image.
    """
    x0 = check_images(model, x0)
    if cache is not None:
        return cache.invert(model, x0, steps=steps, spacing=spacing, record_last=record_last, progress=progress)
    ts = timestep_grid(steps, spacing, model.T)
    acp = model.alphas_cumprod
    hu = model.hooked
    x, hs = x0.clone(), []
    bar = _bar(len(ts) - 1 + record_last, "invert", progress)
    for k in range(len(ts) - 1):
        t, t_next = ts[k], ts[k + 1]
        with hu.record("h", "g") as rec:
            eps = hu.eps(x, t)
        hs.append(rec["h"])
        _emit(callbacks, StepInfo("invert", k, t, x, rec["h"], rec.get("g")))
        a_t, a_next = float(acp[t]), float(acp[t_next])
        x = maths.ddim_inversion_step(x, eps, a_t, a_next)
        _check_finite(x, "inversion", k, t)
        bar.update(1)
    rec_ts = ts[:-1]
    if record_last:
        with hu.record("h", "g") as rec:
            hu.eps(x, ts[-1])
        hs.append(rec["h"])
        _emit(callbacks, StepInfo("invert", len(ts) - 1, ts[-1], x, rec["h"], rec.get("g")))
        rec_ts = ts
        bar.update(1)
    bar.close()
    return Inversion(x, torch.stack(hs, 1), list(rec_ts), ts, spacing)


# ---------------------------------------------------------------------------------------------
# Generation and injection

@dataclasses.dataclass
class InjectionConfig:
    """Parameters of the asymmetric reverse process (paper notation; defaults from its 256-px runs).

    gamma:     γ, the share of content in h̃ = Slerp(h, ĥ^content·‖h‖, γ) (paper §4.2; 0.3–0.4 advised).
    t_edit:    inject while t ≥ t_edit (the editing interval [T, t_edit], paper §4.1).
    t_boost:   quality boosting, stochastic steps (η = ``eta_boost``) for t ≤ t_boost (Asyrp/paper §4.1).
    omega:     ω, strength of style calibration (paper §4.3); used only when ``calibrate``.
    calibrate: the explicit switch for style calibration (the authors' code means "off" by ω = 0).
    method:    how h̃ is made: normalised_slerp (paper) | slerp | lerp | replace | add.
    mask:      optional local-mixing mask (any resolution, resized to h's); h̃ = m⊙f(…) + (1−m)⊙h.
    mask_norm: "global" — normalised Slerp as everywhere; "none" — plain Slerp inside the mask (authors).
    boost:     "paper" — noise at every step t ≤ t_boost; "authors" — only at inversion-grid timesteps.
    steps / spacing: the generation grid (see :func:`timestep_grid`).
    authors_noise_scale: scale D_t by 0.9985 for t ≥ 950 as the authors' code does (off: paper).
    clip_x0:   clamp P_t to [−1, 1] (diffusers' ``clip_sample``); on plain steps ε is re-derived from
               the clamped P_t. Helps generation from pure noise with weak models; off keeps DDIM exact.
    seed:      seeds every random draw (boosting noise).
    """

    gamma: float = 0.3
    t_edit: int = 400
    t_boost: int = 200
    omega: float = 0.3
    calibrate: bool = False
    method: str = "normalised_slerp"
    mask: object = None
    mask_norm: str = "global"
    boost: str = "paper"
    eta_boost: float = 1.0
    steps: int = 50
    spacing: str = "authors"
    authors_noise_scale: bool = False
    clip_x0: bool = False
    seed: int = 0

    @classmethod
    def for_model(cls, model, **overrides) -> "InjectionConfig":
        """The package defaults, then ``model.defaults`` (its folder's ``diffstyle_lab.json`` or the
        registry's), then ``overrides``; validated against the model's T."""
        return cls(**{**getattr(model, "defaults", {}), **overrides}).validate(model.T)

    def validate(self, T: int = 1000) -> "InjectionConfig":
        def bad(name, val, why):
            raise ValueError(f"{name}={val!r}: {why}")
        if not (isinstance(self.gamma, (int, float)) and 0.0 <= self.gamma <= 1.0):
            bad("gamma", self.gamma, "γ must be in [0, 1] (the share of content; the paper advises 0.3–0.4)")
        if not isinstance(self.t_edit, int) or not 0 <= self.t_edit < T:
            bad("t_edit", self.t_edit, f"must be an integer in [0, {T}) (the paper uses 400 of 1000)")
        if not isinstance(self.t_boost, int) or not 0 <= self.t_boost < T:
            bad("t_boost", self.t_boost, f"must be an integer in [0, {T}) (0 switches boosting off)")
        if self.t_boost > self.t_edit:
            bad("t_boost", self.t_boost, f"must not exceed t_edit={self.t_edit} (boosting follows editing)")
        if not (isinstance(self.omega, (int, float)) and math.isfinite(self.omega) and 0.0 <= self.omega <= 1.0):
            bad("omega", self.omega, "ω must be in [0, 1] (1 removes the injection, ≈0 keeps it)")
        if self.method not in maths.MIX_METHODS:
            bad("method", self.method, f"choose one of {maths.MIX_METHODS}")
        if self.mask_norm not in ("global", "none"):
            bad("mask_norm", self.mask_norm, "choose 'global' (normalised Slerp) or 'none' (plain Slerp, authors)")
        if self.boost not in ("paper", "authors"):
            bad("boost", self.boost, "choose 'paper' or 'authors'")
        if not 0.0 <= self.eta_boost <= 1.0:
            bad("eta_boost", self.eta_boost, "η must be in [0, 1]")
        timestep_grid(self.steps, self.spacing, T)
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        m = d.pop("mask")
        d["mask"] = None if m is None else {"shape": list(torch.as_tensor(m).shape),
                                            "mean": float(torch.as_tensor(m, dtype=torch.float32).mean())}
        return d


@dataclasses.dataclass
class Result:
    """Images in [−1, 1] (B×C×H×W) and the manifest that says how they were made."""

    images: torch.Tensor
    manifest: dict

    def to_pil(self):
        from .images import to_pil
        return [to_pil(x) for x in self.images]


def _eta_at(cfg: InjectionConfig, t: int, inv_grid: set | None) -> float:
    if cfg.t_boost <= 0 or t > cfg.t_boost:
        return 0.0
    if cfg.boost == "authors" and inv_grid is not None and t not in inv_grid:
        return 0.0
    return cfg.eta_boost


@torch.no_grad()
def reverse(model: DiffusionModel, x_T: torch.Tensor, content: Inversion | None, cfg: InjectionConfig,
            progress: bool = True, callbacks: Sequence[Callback] = (), force_doubling: bool = False,
            sample_seeds: Sequence[int] | None = None) -> torch.Tensor:
    """The reverse process from ``x_T``; with ``content`` given, inject its h for t ≥ t_edit.

    ``content=None`` is plain generation (boosting still applies for t ≤ t_boost). Boosting noise
    is drawn per sample from its own generator, seeded by ``sample_seeds[i]`` (default
    ``cfg.seed + i``), so a sample's result does not depend on the batch it runs in.
    """
    cfg.validate(model.T)
    hu, acp = model.hooked, model.alphas_cumprod
    ts = timestep_grid(cfg.steps, cfg.spacing, model.T)
    x = x_T.to(model.device, hu.dtype).clone()
    b = x.shape[0]
    if content is not None and len(content) != b:
        raise ValueError(f"{len(content)} content inversions for {b} starting points; pair them first")
    gens = sample_generators(cfg.seed, b, sample_seeds)
    mask = None
    inv_grid = set(content.grid) if content is not None else None
    bar = _bar(len(ts), "inject" if content is not None else "generate", progress)
    for i in reversed(range(len(ts))):
        t = ts[i]
        a_t = float(acp[t])
        a_prev = float(acp[ts[i - 1]]) if i > 0 else 1.0
        sigma = maths.ddim_sigma(a_t, a_prev, _eta_at(cfg, t, inv_grid)) if i > 0 else 0.0
        editing = content is not None and t >= cfg.t_edit
        if editing:
            hc = content.h_at(t).to(x)

            def edit(h, hc=hc):
                nonlocal mask
                if cfg.mask is not None and mask is None:
                    mask = _prepare_mask(cfg.mask, h)
                return mix_for_config(cfg, h, hc, mask)
            eps, eps_tilde, h, h_tilde, g = hu.asymmetric_eps(x, t, edit, force_doubling=force_doubling)
            _emit(callbacks, StepInfo("inject", len(ts) - 1 - i, t, x, h, g, h_tilde, hc))
            if cfg.calibrate:
                x = x + maths.calibration_shift(x, eps, eps_tilde, a_t, cfg.omega)
                eps = hu.eps(x, t)
                x0, eps_dir = maths.pred_x0(x, eps, a_t), eps
            else:
                x0, eps_dir = maths.pred_x0(x, eps_tilde, a_t), eps
        else:
            if callbacks:
                with hu.record("h", "g") as rec:
                    eps = hu.eps(x, t)
                _emit(callbacks, StepInfo("generate", len(ts) - 1 - i, t, x, rec["h"], rec.get("g")))
            else:
                eps = hu.eps(x, t)
            x0, eps_dir = maths.pred_x0(x, eps, a_t), eps
            if cfg.clip_x0:
                x0 = x0.clamp(-1, 1)
                eps_dir = (x - a_t ** 0.5 * x0) / (1 - a_t) ** 0.5
        if cfg.clip_x0 and editing:
            x0 = x0.clamp(-1, 1)
        if cfg.authors_noise_scale and t >= 950:
            eps_dir = 0.9985 * eps_dir
        noise = None
        if sigma > 0:
            noise = sample_noise(gens, x)
        x = maths.ddim_step(x0, eps_dir, a_prev, sigma, noise)
        _check_finite(x, "injection" if content is not None else "generation", len(ts) - 1 - i, t)
        bar.update(1)
    bar.close()
    return x


def mix_for_config(cfg: InjectionConfig, h, hc, mask=None):
    """h̃ for one editing step as ``cfg`` says: its mixing rule, then the mask (if any).

    With a mask and ``mask_norm="none"`` normalised Slerp becomes plain Slerp inside the mask (the
    authors' local mixing)."""
    if mask is not None and cfg.mask_norm == "none" and cfg.method == "normalised_slerp":
        mixed = maths.slerp(h, hc, cfg.gamma)
    else:
        mixed = maths.mix_h(h, hc, cfg.gamma, cfg.method)
    return mixed if mask is None else maths.masked_mix(h, mixed, mask)


def sample_noise(gens, x: torch.Tensor) -> torch.Tensor:
    """One draw per sample from its own generator (so a sample's noise does not depend on its batch)."""
    return torch.stack([torch.randn(x.shape[1:], generator=g, dtype=torch.float32) for g in gens]).to(x)


def sample_generators(seed: int, b: int, sample_seeds: Sequence[int] | None = None):
    """Per-sample CPU generators seeded by ``sample_seeds`` (default ``seed + i``)."""
    if sample_seeds is None:
        sample_seeds = [int(seed) + i for i in range(b)]
    if len(sample_seeds) != b:
        raise ValueError(f"{len(sample_seeds)} sample_seeds for {b} samples")
    return [torch.Generator(device="cpu").manual_seed(int(sd)) for sd in sample_seeds]


def _prepare_mask(mask, h):
    m = maths.resize_mask(torch.as_tensor(mask), tuple(h.shape[-2:])).to(h)
    if m.shape[0] not in (1, h.shape[0]):
        raise ValueError(f"mask batch {m.shape[0]} does not match {h.shape[0]} pairs; pass one mask or one per pair")
    return m


def generate(model: DiffusionModel, x_T: torch.Tensor, steps: int = 50, spacing: str = "authors",
             t_boost: int = 0, seed: int = 0, progress: bool = True, callbacks: Sequence[Callback] = (),
             clip_x0: bool = False) -> torch.Tensor:
    """Plain DDIM generation from ``x_T`` (η = 0, or η = 1 for t ≤ t_boost); ``clip_x0`` clamps P_t."""
    cfg = InjectionConfig(gamma=0.0, t_edit=max(t_boost, 0), t_boost=t_boost, steps=steps, spacing=spacing, seed=seed,
                          clip_x0=clip_x0)
    return reverse(model, x_T, None, cfg, progress=progress, callbacks=callbacks)


def pair_up(n_content: int, n_style: int, pairs: str) -> tuple[list[int], list[int]]:
    """Index lists for ``pairs='zip'`` (i with i) or ``'product'`` (every content × every style)."""
    if pairs == "zip":
        if n_content != n_style:
            raise ValueError(f"pairs='zip' needs as many content ({n_content}) as style ({n_style}) images; "
                             "use pairs='product' for every combination")
        return list(range(n_content)), list(range(n_style))
    if pairs == "product":
        return [i for i in range(n_content) for _ in range(n_style)], [j for _ in range(n_content) for j in range(n_style)]
    raise ValueError(f"pairs={pairs!r}: choose 'zip' or 'product'")


def inject(model: DiffusionModel, content, style, config: InjectionConfig | None = None, *,
           inversion_steps: int = 50, inversion_spacing: str = "authors", record_last: bool = True,
           pairs: str = "zip", cache=None, progress: bool = True, callbacks: Sequence[Callback] = (),
           force_doubling: bool = False, sample_seeds: Sequence[int] | None = None, **overrides) -> Result:
    """Content injection: the content of ``content`` in the style of ``style``.

    ``content`` and ``style`` are B×C×H×W images in [−1, 1] or :class:`Inversion` objects.
    Keyword overrides set fields of :class:`InjectionConfig` (``gamma=0.4, t_edit=500``…).
    """
    cfg = dataclasses.replace(config or InjectionConfig(), **overrides).validate(model.T)
    if cfg.mask is not None:
        maths.resize_mask(torch.as_tensor(cfg.mask), (1, 1))  # shape/range errors before any work
    t0 = time.perf_counter()

    def as_inv(v, name):
        if isinstance(v, Inversion):
            return v
        return ddim_invert(model, check_images(model, v, name), inversion_steps, inversion_spacing,
                           record_last=record_last, progress=progress, cache=cache)
    ci, si = as_inv(content, "content images"), as_inv(style, "style images")
    a, b = pair_up(len(ci), len(si), pairs)
    ci, si = ci.select(a), si.select(b)
    t1 = time.perf_counter()
    images = reverse(model, si.x_T, ci, cfg, progress=progress, callbacks=callbacks, force_doubling=force_doubling,
                     sample_seeds=sample_seeds)
    t2 = time.perf_counter()
    man = manifest(model, {"injection": cfg.to_dict(), "inversion": {
        "steps": inversion_steps, "spacing": inversion_spacing, "grid": ci.grid, "record_last": record_last},
        "generation_grid": timestep_grid(cfg.steps, cfg.spacing, model.T), "pairs": pairs,
        "pair_index": {"content": a, "style": b},
        "split_forward": model.hooked.can_split and not force_doubling,
        "seconds": {"inversion": round(t1 - t0, 3), "injection": round(t2 - t1, 3)}})
    return Result(images.float().cpu(), man)


def manifest(model: DiffusionModel, params: dict) -> dict:
    """Provenance: parameters, package versions and the model's id/revision/weights hash."""
    import diffusers
    import numpy
    from . import __version__
    return {"diffstyle_lab": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "diffusers": diffusers.__version__, "numpy": numpy.__version__},
            "device": str(model.device), "model": model.describe(), **params}
