"""The parameters of a run: :class:`InjectionConfig` (content injection, in the paper's notation) and the
timestep grids it names (:func:`timestep_grid`). Imported by :mod:`~diffstyle_lab.sampling` (which runs them)
and :mod:`~diffstyle_lab.models` (which checks a model folder's injection defaults)."""

from __future__ import annotations

import dataclasses
import math

import torch

from . import maths

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
# Parameters

@dataclasses.dataclass
class InjectionConfig:
    """Parameters of content injection, in the paper's notation; ``docs/method.md`` says for each
    whether its default follows the paper, the authors' code or this toolkit. Named presets:
    :meth:`preset` (``"paper"``, ``"authors"``); a model's own defaults: :meth:`for_model`.

    gamma:     γ, the share of content in h̃ = Slerp(h, ĥ^content·‖h‖, γ) (paper §4.2; 0.3–0.4 advised).
    t_edit:    inject while t ≥ t_edit (the editing interval [T, t_edit], paper §4.1).
    t_boost:   quality boosting, stochastic steps (η = ``eta_boost``) for t ≤ t_boost (Asyrp/paper §4.1).
    omega:     ω, strength of style calibration (paper §4.3); used only when ``calibrate``.
    calibrate: the explicit switch for style calibration (off by default, as in every published command
               of the authors; the paper's runs use it with ω = 0.3: ``preset("paper")``).
    method:    how h̃ is made: normalised_slerp (paper) | slerp | lerp | replace | add.
    mask:      optional local-mixing mask (any resolution, resized to h's).
    mask_mode: "region" — the Slerp's angle and norms over the masked elements, h kept outside (the
               paper and the authors' code); "blend" — h̃ over the whole tensor, then m⊙h̃ + (1−m)⊙h.
    mask_norm: "normalised" — normalised Slerp under a mask (paper); "none" — plain Slerp under a mask
               (the authors' local mixing skips the norm rescaling).
    boost:     "paper" — noise at every step t ≤ t_boost; "authors" — only at injection-grid steps.
    eta_boost: η of the boosting steps (1: DDPM-like).
    steps / spacing: the generation grid (see :func:`timestep_grid`).
    inject_every: inject only at the timesteps of the coarser grid timestep_grid(steps // inject_every)
               (the authors' content_replace_step; 1000 steps with 20 → their 50-point grid); 1: every step.
    inversion_steps: points of the DDIM inversion grid (same spacing); 50 in the paper and the authors' code.
    record_last: also record h^content at t = T−1 (one more pass; this toolkit's choice — the authors'
               code has none there and uses the nearest stored t).
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
    mask_mode: str = "region"
    mask_norm: str = "normalised"
    boost: str = "paper"
    eta_boost: float = 1.0
    steps: int = 50
    spacing: str = "authors"
    inject_every: int = 1
    inversion_steps: int = 50
    record_last: bool = True
    authors_noise_scale: bool = False
    clip_x0: bool = False
    seed: int = 0

    PRESETS = ("paper", "authors")

    @classmethod
    def preset(cls, name: str, **overrides) -> "InjectionConfig":
        """Every field written out for a named setting (then ``overrides``):

        * ``"paper"`` — what the paper states: γ 0.3, t_edit 400, t_boost 200 with noise at every
          step below it, calibration on with ω 0.3, normalised Slerp (normalised under a mask too).
          Where the paper is silent (grids, h at t = 999) the toolkit's defaults: 50/50 steps.
        * ``"authors"`` — the authors' published script: 50 inversion steps, 1000 generation steps,
          injection (and boost noise) only on their 50-point grid (every 20 steps), γ 0.3,
          t_boost 200, calibration off (ω 0), no h at t = 999, plain Slerp under a mask.
        """
        common = dict(gamma=0.3, t_edit=400, t_boost=200, method="normalised_slerp", mask=None, mask_mode="region",
                      eta_boost=1.0, spacing="authors", inversion_steps=50, authors_noise_scale=False,
                      clip_x0=False, seed=0)
        presets = {
            "paper": dict(common, omega=0.3, calibrate=True, mask_norm="normalised", boost="paper", steps=50,
                          inject_every=1, record_last=True),
            "authors": dict(common, omega=0.0, calibrate=False, mask_norm="none", boost="authors", steps=1000,
                            inject_every=20, record_last=False),
        }
        if name not in presets:
            raise ValueError(f"preset {name!r} is unknown; choose one of {cls.PRESETS}")
        return cls(**{**presets[name], **overrides}).validate()

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
        if self.method not in maths.MIX_RULES:
            bad("method", self.method, f"choose one of {maths.mix_methods()}")
        if self.mask_mode not in MASK_MODES:
            bad("mask_mode", self.mask_mode, f"choose one of {MASK_MODES} ('region': the paper's local mixing)")
        if self.mask_norm not in MASK_NORMS:
            hint = " ('global' is now 'normalised')" if self.mask_norm == "global" else ""
            bad("mask_norm", self.mask_norm, f"choose 'normalised' (paper) or 'none' (plain Slerp, authors){hint}")
        if self.boost not in ("paper", "authors"):
            bad("boost", self.boost, "choose 'paper' or 'authors'")
        if not 0.0 <= self.eta_boost <= 1.0:
            bad("eta_boost", self.eta_boost, "η must be in [0, 1]")
        timestep_grid(self.steps, self.spacing, T)
        timestep_grid(self.inversion_steps, self.spacing, T)
        self.injection_grid(T)
        return self

    def injection_grid(self, T: int = 1000) -> list[int]:
        """The timesteps where injection may happen (t ≥ t_edit decides where it does): the
        generation grid, or with ``inject_every = k`` the grid of steps // k points."""
        k = self.inject_every
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or self.steps % k or self.steps // k < 2:
            raise ValueError(f"inject_every={k!r}: must be a positive integer dividing steps={self.steps} into "
                             "at least 2 points (1: every step; the authors' script: 1000 steps, 20)")
        if k == 1:
            return timestep_grid(self.steps, self.spacing, T)
        coarse = timestep_grid(self.steps // k, self.spacing, T)
        if not set(coarse) <= set(timestep_grid(self.steps, self.spacing, T)):
            raise ValueError(f"inject_every={k}: the {self.steps // k}-point grid is not part of the "
                             f"{self.steps}-step {self.spacing!r} grid; use steps=1000 (every t) or inject_every=1")
        return coarse

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        m = d.pop("mask")
        d["mask"] = None if m is None else {"shape": list(torch.as_tensor(m).shape),
                                            "mean": float(torch.as_tensor(m, dtype=torch.float32).mean())}
        return d


MASK_MODES = ("region", "blend")
MASK_NORMS = ("normalised", "none")
