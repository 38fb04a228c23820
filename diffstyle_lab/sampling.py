"""Hooked samplers: DDIM inversion that records h, plain DDIM generation, and the asymmetric
reverse process with content injection (``docs/method.md`` §4–7).

The loops are explicit, diffusers-style (predict, then step); the maths of each step is in
:mod:`diffstyle_lab.maths`. The network is reached through a small ε-provider (:class:`PixelEps`
here, :class:`diffstyle_lab.backends.sd.LatentEps` for Stable Diffusion), so one sampler serves pixels and
latents. All images are tensors in [−1, 1], B×C×H×W.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch
from tqdm.auto import tqdm

from . import maths
from .config import (MASK_MODES, MASK_NORMS, SPACINGS, InjectionConfig, ParameterTypeError, flag,  # noqa: F401
                     real, show, timestep_grid)
from .models import GENERATION_SETTINGS, DiffusionModel


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


def check_tensor(model: DiffusionModel, x, name: str, what: str = "in [-1, 1]") -> None:
    """``x`` must be a non-empty B×C×H×W real tensor of the model's C, H, W with finite values."""
    if not torch.is_tensor(x):
        raise ParameterTypeError(f"{name}: expected a B×C×H×W tensor {what}, got {type(x).__name__} "
                                 "(use diffstyle_lab.images.load_image)")
    if x.dtype.is_complex or x.dtype == torch.bool:
        raise ParameterTypeError(f"{name}: {x.dtype} tensor; pass real floating-point values {what}")
    s, c = model.sample_size, model.in_channels
    if x.dim() != 4 or x.shape[0] < 1 or x.shape[1] != c or x.shape[2] != s or x.shape[3] != s:
        raise ValueError(f"{name} have shape {tuple(x.shape)} but the model ({model.source}) works on B×"
                         f"{c}×{s}×{s} (B ≥ 1); load them with diffstyle_lab.images.load_image(path, size={s})")
    if not maths.is_finite(x):
        raise ValueError(f"{name} contain NaN or inf")


def check_images(model: DiffusionModel, x: torch.Tensor, name: str = "images") -> torch.Tensor:
    check_tensor(model, x, name)
    from .images import check_range
    check_range(x, name)
    return x.to(model.device, model.hooked.dtype)


# ---------------------------------------------------------------------------------------------
# ε-providers: what the samplers ask of a network

@runtime_checkable
class EpsProvider(Protocol):
    """What :func:`reverse` and :func:`ddim_invert` ask of a network: the extension point for a new kind of
    model. Implemented by :class:`PixelEps` (pixel U-Nets) and :class:`diffstyle_lab.backends.sd.LatentEps`
    (Stable Diffusion's latents); a :class:`DiffusionModel` given to a sampler is wrapped in a PixelEps.

    * ``model``: the :class:`DiffusionModel`-like object whose ``T``, ``alphas_cumprod`` and ``device`` it uses;
    * ``label``: a prefix of progress bars and error messages ("" or e.g. "latent ");
    * ``check_x0`` / ``check_x_T`` / ``check_content``: validate and move inputs (one-line ``ValueError``);
    * ``eps(x, t, record)`` → ``(ε, h, g)`` (h, g only when ``record``);
    * ``asymmetric(x, t, edit)`` → ``(ε, ε̃, h, h̃, g)`` with h̃ = ``edit(h)``;
    * ``invert_eps(x, t)`` → ``(ε, h to store, h, g)`` for one inversion step;
    * ``content_h(content, t)`` → h^content at t, in the layout ``edit`` receives h.

    Optional members, used where present: ``encode(images, name)`` / ``decode(x)`` take images in [−1, 1] to
    the provider's space and back (:func:`inject`; without them the images are the space), ``image_size``
    (the command line loads images at it), ``cache_identity()`` (a JSON-able dict of everything an inversion
    depends on besides the image and grid: :class:`~diffstyle_lab.cache.InversionCache` needs it) and
    ``manifest_info()`` (a dict added to a result's manifest). The command line builds providers by name
    from :data:`EPS_PROVIDERS` (``register_eps_provider`` adds a kind).
    """

    model: object
    label: str

    def check_x0(self, x0: torch.Tensor, name: str = ...) -> torch.Tensor: ...

    def check_x_T(self, x_T: torch.Tensor, name: str = ...) -> torch.Tensor: ...

    def check_content(self, content: Inversion) -> None: ...

    def eps(self, x: torch.Tensor, t: int, record: bool = False) -> tuple: ...

    def asymmetric(self, x: torch.Tensor, t: int, edit: Callable) -> tuple: ...

    def invert_eps(self, x: torch.Tensor, t: int) -> tuple: ...

    def content_h(self, content: Inversion, t: int) -> torch.Tensor: ...


class PixelEps:
    """The :class:`EpsProvider` of a pixel-space U-Net (:class:`DiffusionModel`), through its
    :class:`~diffstyle_lab.hooks.HookedUNet` (``asymmetric`` by the split forward where the layout allows);
    the latent one (conditioning, guidance, v-prediction) is :class:`diffstyle_lab.backends.sd.LatentEps`."""

    label = ""

    def __init__(self, model: DiffusionModel, force_doubling: bool = False):
        self.model, self.hooked, self.force_doubling = model, model.hooked, force_doubling

    def check_x0(self, x0, name="images"):
        return check_images(self.model, x0, name)

    def check_x_T(self, x_T, name="x_T"):
        check_tensor(self.model, x_T, name, "of starting noise")
        return x_T.to(self.model.device, self.hooked.dtype)

    def check_content(self, content: Inversion):
        pass

    def eps(self, x, t, record: bool = False):
        if not record:
            return self.hooked.eps(x, t), None, None
        with self.hooked.record("h", "g") as rec:
            eps = self.hooked.eps(x, t)
        return eps, rec["h"], rec.get("g")

    def asymmetric(self, x, t, edit):
        return self.hooked.asymmetric_eps(x, t, edit, force_doubling=self.force_doubling)

    def invert_eps(self, x, t):
        eps, h, g = self.eps(x, t, record=True)
        return eps, h, h, g

    def content_h(self, content: Inversion, t: int):
        return content.h_at(t)

    @property
    def image_size(self) -> int:
        return self.model.sample_size

    def cache_identity(self) -> dict:
        """The U-Net's weights hash and noise schedule (the inversion cache's keys since format 2)."""
        m = self.model
        return {"weights": m.weights_hash, "scheduler": {k: m.scheduler_config.get(k) for k in
                ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "trained_betas")}}

    def manifest_info(self) -> dict:
        return {"split_forward": self.hooked.can_split and not self.force_doubling}


def eps_provider(model, force_doubling: bool = False):
    """``model`` itself when it is an :class:`EpsProvider` (e.g. :class:`diffstyle_lab.backends.sd.LatentEps`),
    else a :class:`PixelEps` over it."""
    return model if isinstance(model, EpsProvider) else PixelEps(model, force_doubling)


def provider_input(net, images, name: str = "images"):
    """``images`` in the space of the ε-provider ``net``: its ``encode`` where it has one, else checked and
    moved by its ``check_x0`` (a pixel model's images are its space)."""
    return net.encode(images, name) if hasattr(net, "encode") else net.check_x0(images, name)


# ---------------------------------------------------------------------------------------------
# ε-providers by name, for the command line: one registry, as the mixing rules'

@dataclasses.dataclass(frozen=True)
class ProviderKind:
    """A kind of ε-provider the command line builds by name (``diffstyle-lab inject --provider NAME``).

    name:  its name on the command line.
    load:  ``load(model, device)`` → the provider; ``model`` is ``--model`` (a hub id or folder; None: the
           kind's default model, if it has one), ``device`` a torch device string.
    doc:   what it is, in a few words, for ``--help``.
    """
    name: str
    load: Callable
    doc: str = ""


EPS_PROVIDERS: dict[str, ProviderKind] = {}


def register_eps_provider(kind: ProviderKind) -> ProviderKind:
    """Add ``kind`` to :data:`EPS_PROVIDERS` (a one-line ``ValueError`` if its name is taken)."""
    if kind.name in EPS_PROVIDERS:
        raise ValueError(f"ε-provider kind {kind.name!r} exists already; choose another name")
    EPS_PROVIDERS[kind.name] = kind
    return kind


def load_provider(name: str, model=None, device="cpu"):
    """The ε-provider of kind ``name`` (:data:`EPS_PROVIDERS`) over ``model`` on ``device`` (a kind that loads a
    :class:`DiffusionModel` gets its :class:`PixelEps`)."""
    kind = EPS_PROVIDERS.get(name)
    if kind is None:
        raise ValueError(f"provider={name!r} is unknown; choose one of {tuple(EPS_PROVIDERS)}")
    return eps_provider(kind.load(model, device))


def _load_pixel(model, device):
    from .models import load_default_model, load_model
    return PixelEps(load_default_model(device=device) if not model else load_model(model, device=device))


def _load_latent(model, device):
    from .backends.sd import latent_provider
    return latent_provider(model, device)


register_eps_provider(ProviderKind("pixel", _load_pixel, "a pixel-space U-Net; default: the embedded face model"))
register_eps_provider(ProviderKind("latent", _load_latent, "Stable Diffusion 1.x/2.x in latent space, conditioned "
                                   "on the empty prompt (needs the model's text encoder)"))


# ---------------------------------------------------------------------------------------------
# DDIM inversion

@torch.no_grad()
def ddim_invert(model, x0: torch.Tensor, steps: int = 50, spacing: str = "authors",
                record_last: bool = True, progress: bool = True, callbacks: Sequence[Callback] = ()) -> Inversion:
    """Deterministic DDIM inversion x_0 → x_T on a grid of ``steps`` points, recording h_t.

    ``model``: a :class:`DiffusionModel` or an ε-provider. The model is evaluated at the smaller t
    of each pair (:func:`maths.ddim_inversion_step`). ``record_last=True`` pays one more pass at
    t = T−1 so that h^content exists there (this toolkit's choice; the paper is silent); ``False``
    is the authors' code, which uses the nearest stored t. Through a disk cache:
    :func:`diffstyle_lab.cache.cached_invert` (the cache wraps this function).
    """
    net = eps_provider(model)
    x0 = net.check_x0(x0)
    record_last = flag("record_last", record_last)
    ts = timestep_grid(steps, spacing, net.model.T)
    acp = net.model.alphas_cumprod
    x, hs = x0.clone(), []
    rec_ts = ts if record_last else ts[:-1]
    bar = _bar(len(rec_ts), net.label + "invert", progress)
    for k, t in enumerate(rec_ts):
        eps, h_store, h, g = net.invert_eps(x, t)
        hs.append(h_store)
        _emit(callbacks, StepInfo("invert", k, t, x, h, g))
        if k < len(ts) - 1:
            x = maths.ddim_inversion_step(x, eps, float(acp[t]), float(acp[ts[k + 1]]))
            _check_finite(x, net.label + "inversion", k, t)
        bar.update(1)
    bar.close()
    return Inversion(x, torch.stack(hs, 1), list(rec_ts), ts, spacing)




@dataclasses.dataclass
class Result:
    """Images (B×C×H×W; float32, or float64 from a float64 model) and the manifest that says how they were
    made. The images are the exact DDIM result, not clamped: a trained model keeps them close to [−1, 1], a
    random one need not; :meth:`to_pil` clamps."""

    images: torch.Tensor
    manifest: dict

    def to_pil(self):
        from .images import to_pil
        return [to_pil(x) for x in self.images]


# ---------------------------------------------------------------------------------------------
# The reverse process

@torch.no_grad()
def reverse(model, x_T: torch.Tensor, content: Inversion | None, cfg: InjectionConfig,
            progress: bool = True, callbacks: Sequence[Callback] = (), force_doubling: bool = False,
            sample_seeds: Sequence[int] | None = None) -> torch.Tensor:
    """The reverse process from ``x_T``; with ``content`` given, inject its h where t ≥ t_edit on
    the injection grid (paper §4.1, ``docs/method.md`` §5).

    ``model``: a :class:`DiffusionModel` or an ε-provider (:class:`PixelEps`,
    :class:`diffstyle_lab.backends.sd.LatentEps`). ``content=None`` is plain generation (boosting still
    applies). Boosting noise is drawn per sample from its own generator, seeded by
    ``sample_seeds[i]`` (default ``cfg.seed + i``), so a sample's result does not depend on its batch.
    """
    net = eps_provider(model, force_doubling)
    T, acp = net.model.T, net.model.alphas_cumprod
    cfg.validate(T)
    ts = timestep_grid(cfg.steps, cfg.spacing, T)
    inject_ts = set(cfg.injection_grid(T))
    x = net.check_x_T(x_T).clone()
    b = x.shape[0]
    if content is not None:
        if len(content) != b:
            raise ValueError(f"{len(content)} content inversions for {b} starting points; pair them first")
        net.check_content(content)
    gens = sample_generators(cfg.seed, b, sample_seeds)
    mask = None
    what = "injection" if content is not None else "generation"
    bar = _bar(len(ts), net.label + what, progress)
    for i in reversed(range(len(ts))):
        t, step = ts[i], len(ts) - 1 - i
        a_t, a_prev = float(acp[t]), (float(acp[ts[i - 1]]) if i > 0 else 1.0)
        editing = content is not None and t >= cfg.t_edit and t in inject_ts
        if editing:                                               # ε̃ = ε(x_t | h̃), ε = ε(x_t | h)
            hc = net.content_h(content, t).to(x)
            if mask is None and cfg.mask is not None:
                mask = _prepare_mask(cfg.mask, hc, b)
            eps, eps_tilde, h, h_tilde, g = net.asymmetric(x, t, _editor(cfg, hc, mask))
            _emit(callbacks, StepInfo("inject", step, t, x, h, g, h_tilde, hc))
            if cfg.calibrate:
                x, eps = calibrate(net, x, t, eps, eps_tilde, a_t, cfg.omega)
                eps_tilde = eps
        else:
            eps, h, g = net.eps(x, t, record=bool(callbacks))
            if callbacks:
                _emit(callbacks, StepInfo("generate", step, t, x, h, g))
            eps_tilde = eps
        if cfg.clip_x0:
            eps_tilde, eps = clip_prediction(x, eps_tilde, eps, a_t, rederive_eps=not editing)
        if cfg.authors_noise_scale and t >= 950:
            eps = 0.9985 * eps
        sigma = boost_sigma(cfg, t, a_t, a_prev, inject_ts) if i > 0 else 0.0
        noise = sample_noise(gens, x) if sigma > 0 else None
        x = maths.asymmetric_step(x, eps_tilde, eps, a_t, a_prev, sigma, noise)
        _check_finite(x, net.label + what, step, t)
        bar.update(1)
    bar.close()
    return x


def calibrate(net, x, t, eps, eps_tilde, a_t, omega):
    """Style calibration (paper §4.3): x̃'_t = x̃_t + dx (:func:`maths.calibration_shift`), then a
    fresh ε(x̃'_t) for a plain step. Returns ``(x̃'_t, ε(x̃'_t))``."""
    x = x + maths.calibration_shift(x, eps, eps_tilde, a_t, omega)
    return x, net.eps(x, t)[0]


def boost_sigma(cfg: InjectionConfig, t: int, a_t, a_prev, inject_ts) -> float:
    """σ_t of quality boosting: η = ``eta_boost`` for t ≤ t_boost (``boost="authors"``: only at
    injection-grid timesteps, as the authors' code), else 0 (deterministic DDIM)."""
    on = 0 < cfg.t_boost and t <= cfg.t_boost and (cfg.boost == "paper" or t in inject_ts)
    return maths.ddim_sigma(a_t, a_prev, cfg.eta_boost) if on else 0.0


def clip_prediction(x, eps_tilde, eps, a_t, rederive_eps: bool):
    """``clip_x0``: ε̃ replaced so that P_t(ε̃) is clamped to [−1, 1]; on plain steps
    (``rederive_eps``) the direction's ε follows it, as diffusers' ``clip_sample``."""
    eps_tilde = maths.eps_from_x0(x, maths.pred_x0(x, eps_tilde, a_t).clamp(-1, 1), a_t)
    return eps_tilde, (eps_tilde if rederive_eps else eps)


def _editor(cfg: InjectionConfig, hc, mask):
    def edit(h):
        if h.shape != hc.shape:
            raise ValueError(f"h {tuple(h.shape)} and the content's recorded h {tuple(hc.shape)} differ: "
                             "content and style images must have the same size")
        return mix_for_config(cfg, h, hc, mask)
    return edit


def mix_for_config(cfg: InjectionConfig, h, hc, mask=None):
    """h̃ for one editing step as ``cfg`` says: its mixing rule, local under a mask (if any).

    Under a mask, ``mask_norm="none"`` turns normalised Slerp into plain Slerp (the authors' local
    mixing) and ``mask_mode="region"`` takes the Slerp's angle and norms over the masked elements."""
    if mask is None:
        return maths.mix_h(h, hc, cfg.gamma, cfg.method)
    method = "slerp" if cfg.mask_norm == "none" and cfg.method == "normalised_slerp" else cfg.method
    mixed = maths.mix_h(h, hc, cfg.gamma, method, region=mask if cfg.mask_mode == "region" else None)
    return maths.masked_mix(h, mixed, mask)


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


def _prepare_mask(mask, hc, b: int):
    """The user's mask at h's resolution, one row per h row (guided runs stack k·B rows of h)."""
    m = maths.resize_mask(torch.as_tensor(mask), tuple(hc.shape[-2:])).to(hc)
    if m.shape[0] not in (1, b):
        raise ValueError(f"mask batch {m.shape[0]} does not match {b} pairs; pass one mask or one per pair")
    if m.shape[0] == b and hc.shape[0] != b:
        m = m.repeat(hc.shape[0] // b, 1, 1, 1)
    return m


def generate(model, x_T: torch.Tensor, steps: int = 50, spacing: str = "authors",
             t_boost: int = 0, seed: int = 0, progress: bool = True, callbacks: Sequence[Callback] = (),
             clip_x0: bool = False, eta: float = 0.0) -> torch.Tensor:
    """DDIM generation from ``x_T``: η = ``eta`` at every step (0: deterministic, the exact reverse of
    :func:`ddim_invert`; 1: DDPM-like ancestral steps), or η = 1 only for t ≤ ``t_boost``; ``clip_x0`` clamps
    P_t. Both off by default (a reconstruction must not clip). For samples from pure noise at a model's stored
    settings, :func:`sample`."""
    T = eps_provider(model).model.T            # t_edit plays no part without content: the last t
    eta = real("eta", eta, 0.0, 1.0, "η must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like)")
    if eta > 0 and t_boost:
        raise ValueError(f"eta={eta:g} and t_boost={t_boost}: eta is η at every step, t_boost η = 1 below t_boost; "
                         "pass one of them")
    cfg = InjectionConfig(gamma=0.0, t_edit=T - 1, t_boost=T - 1 if eta > 0 else t_boost,
                          eta_boost=eta if eta > 0 else 1.0, steps=steps, spacing=spacing, seed=seed, clip_x0=clip_x0)
    return reverse(model, x_T, None, cfg, progress=progress, callbacks=callbacks)


def noise_settings(model) -> dict:
    """How ``model`` samples from pure noise: ``{"clip_x0", "eta", "steps"}`` from its folder's
    ``generation_defaults``, else the paper's sampler (no clipping, η 0, 50 steps)."""
    stored = getattr(eps_provider(model).model, "generation", {})
    return {k: kind(stored.get(k, default)) for k, (kind, default, _) in GENERATION_SETTINGS.items()}


def noise_clip_x0(model) -> bool:
    """Whether ``model`` samples from pure noise with P_t clamped (:func:`noise_settings`)."""
    return noise_settings(model)["clip_x0"]


def noise(model, start: int, stop: int, seed: int = 0) -> torch.Tensor:
    """x_T for samples start…stop−1: each sample's Gaussian noise is seeded by (seed, its index), so
    a sample's x_T does not depend on the batch it falls in."""
    import numpy
    shape = (model.in_channels, model.sample_size, model.sample_size)
    xs = []
    for i in range(start, stop):
        s = int(numpy.random.SeedSequence([int(seed), int(i), 3]).generate_state(1, numpy.uint64)[0] % (2 ** 63))
        xs.append(torch.randn(shape, generator=torch.Generator().manual_seed(s)))
    return torch.stack(xs)


def sample(model, n: int, steps: int | None = None, seed: int = 0, spacing: str = "authors", progress: bool = True,
           callbacks: Sequence[Callback] = ()) -> torch.Tensor:
    """``n`` samples from pure noise (:func:`noise` of ``seed``), generated at the model's stored settings
    (:func:`noise_settings`: clip_x0, η and, unless ``steps`` is given, the step count)."""
    m = eps_provider(model).model
    how = noise_settings(model)
    x_T = noise(m, 0, n, seed).to(m.device, m.hooked.dtype)
    return generate(model, x_T, how["steps"] if steps is None else steps, spacing, seed=seed, progress=progress,
                    callbacks=callbacks, clip_x0=how["clip_x0"], eta=how["eta"])


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


def grids(model, cfg: InjectionConfig, inversion: Inversion) -> dict:
    """The grids a run used, for its manifest: inversion, generation, injection and boost noise."""
    T = model.T
    gen, inj = timestep_grid(cfg.steps, cfg.spacing, T), cfg.injection_grid(T)
    acp = model.alphas_cumprod
    boost = [t for i, t in enumerate(gen) if i > 0 and boost_sigma(cfg, t, float(acp[t]), float(acp[gen[i - 1]]),
                                                                    set(inj)) > 0]
    return {"inversion": {"steps": len(inversion.grid), "spacing": inversion.spacing, "grid": inversion.grid,
                          "h_recorded_at": inversion.ts},
            "generation_grid": gen, "injection_grid": [t for t in inj if t >= cfg.t_edit], "boost_grid": boost}


def inject(model, content, style, config: InjectionConfig | None = None, *,
           inversion_spacing: str | None = None, pairs: str = "zip", cache=None, progress: bool = True,
           callbacks: Sequence[Callback] = (), force_doubling: bool = False,
           sample_seeds: Sequence[int] | None = None, **overrides) -> Result:
    """Content injection: the content of ``content`` in the style of ``style``.

    ``model``: a :class:`DiffusionModel` or any :class:`EpsProvider` (e.g.
    :class:`~diffstyle_lab.backends.sd.LatentEps`; ``force_doubling`` is a DiffusionModel's). ``content`` and
    ``style`` are B×C×H×W images in [−1, 1] (taken to the provider's space by its ``encode``, if it has one;
    results come back through its ``decode``) or :class:`Inversion` objects (images are inverted with
    ``cfg.inversion_steps`` on ``inversion_spacing``, default ``cfg.spacing``).
    Keyword overrides set fields of :class:`InjectionConfig` (``gamma=0.4, t_edit=500``…). ``cache``: an
    :class:`~diffstyle_lab.cache.InversionCache` (anything with its ``invert(model, x0, steps, spacing,
    record_last=, progress=)``, given ``model`` as passed here) that inverts the images instead of
    :func:`ddim_invert`.
    """
    net = eps_provider(model, force_doubling)
    cfg = injection_config(net.model, config, overrides)
    pair_up(1, 1, pairs)                         # an unknown pairing fails before any work

    def invert(x, name, is_content):
        run = ddim_invert if cache is None else cache.invert
        return run(model, provider_input(net, x, name), cfg.inversion_steps, inversion_spacing or cfg.spacing,
                   record_last=cfg.record_last, progress=progress)
    info = net.manifest_info() if hasattr(net, "manifest_info") else {}
    return run_injection(net.model, net, invert, content, style, cfg, pairs=pairs, progress=progress,
                         callbacks=callbacks, sample_seeds=sample_seeds, decode=getattr(net, "decode", None), **info)


def injection_config(model, config: InjectionConfig | None, overrides: dict) -> InjectionConfig:
    """``config`` (default :class:`InjectionConfig`) with ``overrides``, validated, mask checked before any work."""
    if config is not None and not isinstance(config, InjectionConfig):
        raise ParameterTypeError(f"config={show(config)}: expected an InjectionConfig (or keyword overrides), "
                                 f"got {type(config).__name__}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(InjectionConfig)})
    if unknown:
        raise ParameterTypeError(f"{unknown[0]}=…: not a parameter of inject; InjectionConfig's fields are "
                                 f"{[f.name for f in dataclasses.fields(InjectionConfig)]}")
    return dataclasses.replace(config or InjectionConfig(), **overrides).validate(model.T)


def run_injection(model, net, invert, content, style, cfg: InjectionConfig, *, pairs: str, progress: bool,
                  callbacks: Sequence[Callback], sample_seeds=None, decode=None, **about) -> Result:
    """The body shared by :func:`inject` and :func:`diffstyle_lab.backends.sd.inject_sd`: invert what is not an
    :class:`Inversion` yet (``invert(x, name, is_content)``), pair, :func:`reverse` on the ε-provider
    ``net``, ``decode`` the result, and record the run (``about`` goes into the manifest)."""
    t0 = time.perf_counter()
    ci = content if isinstance(content, Inversion) else invert(content, "content images", True)
    si = style if isinstance(style, Inversion) else invert(style, "style images", False)
    a, b = pair_up(len(ci), len(si), pairs)
    ci, si = ci.select(a), si.select(b)
    t1 = time.perf_counter()
    images = reverse(net, si.x_T, ci, cfg, progress=progress, callbacks=callbacks, sample_seeds=sample_seeds)
    images = images if decode is None else decode(images)
    t2 = time.perf_counter()
    man = manifest(model, {"injection": cfg.to_dict(), **grids(model, cfg, ci), "pairs": pairs,
                           "pair_index": {"content": a, "style": b}, **about,
                           "seconds": {"inversion": round(t1 - t0, 3), "injection": round(t2 - t1, 3)}})
    return Result(images.to(torch.promote_types(images.dtype, torch.float32)).cpu(), man)   # float64 stays


def manifest(model, params: dict) -> dict:
    """Provenance: parameters, package versions and the model's id/revision/weights hash."""
    import diffusers
    import numpy
    from . import __version__
    return {"diffstyle_lab": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "diffusers": diffusers.__version__, "numpy": numpy.__version__},
            "device": str(model.device), "model": model.describe(), **params}
