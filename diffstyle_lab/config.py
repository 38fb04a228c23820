"""The parameters of a run: :class:`InjectionConfig` (content injection, in the paper's notation) and the
timestep grids it names (:func:`timestep_grid`). Imported by :mod:`~diffstyle_lab.sampling` (which runs them)
and :mod:`~diffstyle_lab.models` (which checks a model folder's injection defaults)."""

from __future__ import annotations

import dataclasses
import math
import numbers

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
    n = integer("steps", n, 2, T, f"need an integer between 2 and T={T}")
    choice("spacing", spacing, SPACINGS, f"choose one of {SPACINGS}")
    if spacing == "authors":
        ts = [k * (T - 1) // (n - 1) for k in range(n)]
    elif spacing == "leading":
        ts = [k * (T // n) for k in range(n)]
    elif spacing == "trailing":
        ts = sorted(int(round(T - k * T / n)) - 1 for k in range(n))
    else:                                         # "linspace" (choice() checked the name)
        ts = [int(round(k * (T - 1) / (n - 1))) for k in range(n)]
    if len(set(ts)) != len(ts):
        raise ValueError(f"{n} steps with spacing={spacing!r} repeat a timestep; use fewer steps")
    return ts


# ---------------------------------------------------------------------------------------------
# Parameters

@maths.document_methods          # ``{methods}`` below: the registered mixing rules
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
    method:    how h̃ is made, one rule of maths.MIX_RULES (maths.register_mix_rule adds one): {methods}.
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
        """Check every field (one-line :class:`ParameterTypeError` for a wrong type, ``ValueError`` for a
        wrong value, each naming the field and the fix) and normalise numbers (numpy scalars → int/float,
        numpy bools → bool). Returns ``self``."""
        def bad(name, val, why):
            raise ValueError(f"{name}={show(val)}: {why}")
        self.gamma = real("gamma", self.gamma, 0.0, 1.0,
                          "γ must be in [0, 1] (the share of content; the paper advises 0.3–0.4)")
        self.t_edit = integer("t_edit", self.t_edit, 0, T - 1, f"must be an integer in [0, {T}) (the paper uses 400 of 1000)")
        self.t_boost = integer("t_boost", self.t_boost, 0, T - 1, f"must be an integer in [0, {T}) (0 switches boosting off)")
        if self.t_boost > self.t_edit:
            bad("t_boost", self.t_boost, f"must not exceed t_edit={self.t_edit} (boosting follows editing)")
        self.omega = real("omega", self.omega, 0.0, 1.0, "ω must be in [0, 1] (1 removes the injection, ≈0 keeps it)")
        choice("method", self.method, maths.MIX_RULES, f"choose one of {maths.mix_methods()}")
        choice("mask_mode", self.mask_mode, MASK_MODES,
               f"choose one of {MASK_MODES} ('region': the paper's local mixing)")
        hint = " ('global' is now 'normalised')" if self.mask_norm == "global" else ""
        choice("mask_norm", self.mask_norm, MASK_NORMS, f"choose 'normalised' (paper) or 'none' (plain Slerp, authors){hint}")
        choice("boost", self.boost, ("paper", "authors"), "choose 'paper' or 'authors'")
        choice("spacing", self.spacing, SPACINGS, f"choose one of {SPACINGS}")
        self.eta_boost = real("eta_boost", self.eta_boost, 0.0, 1.0, "η must be in [0, 1]")
        for name in ("calibrate", "record_last", "authors_noise_scale", "clip_x0"):
            setattr(self, name, flag(name, getattr(self, name)))
        self.seed = integer("seed", self.seed, 0, SEED_MAX, "must be a whole number in [0, 2**63) (seeds the boosting noise)")
        self.steps = integer("steps", self.steps, 2, T, f"need an integer between 2 and T={T}")
        self.inversion_steps = integer("inversion_steps", self.inversion_steps, 2, T, f"need an integer between 2 and T={T}")
        self.inject_every = integer("inject_every", self.inject_every, 1, T, "must be a positive integer dividing steps")
        check_mask(self.mask)
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
SEED_MAX = 2 ** 63 - 1


class ParameterTypeError(TypeError, ValueError):
    """A parameter of the wrong type (a string for a number, a bool for γ, …); one line naming it and
    the fix. Also a ``ValueError``, so the command line reports it like every bad value."""


def show(val, width: int = 60) -> str:
    """``repr(val)`` on one line, cut to ``width`` characters (tensors and arrays by their shape)."""
    if torch.is_tensor(val) or type(val).__module__ == "numpy" and hasattr(val, "shape") and val.shape:
        return f"<{type(val).__name__} of shape {tuple(val.shape)}>"
    r = " ".join(repr(val).split())
    return r if len(r) <= width else r[:width - 1] + "…"


def _kind(val) -> str:
    return type(val).__name__


def real(name: str, val, lo: float, hi: float, why: str) -> float:
    """``val`` as a finite float in [lo, hi] (ints and numpy scalars too; bools, strings, tensors refused)."""
    if isinstance(val, bool) or type(val).__name__ == "bool_" or not isinstance(val, numbers.Real):
        raise ParameterTypeError(f"{name}={show(val)}: expected a number, got {_kind(val)}; {why}")
    f = float(val)
    if not (math.isfinite(f) and lo <= f <= hi):
        raise ValueError(f"{name}={show(val)}: {why}")
    return f


def integer(name: str, val, lo: int, hi: int, why: str) -> int:
    """``val`` as an int in [lo, hi] (numpy integers too; bools, floats, strings refused)."""
    if isinstance(val, bool) or not isinstance(val, numbers.Integral):
        raise ParameterTypeError(f"{name}={show(val)}: expected a whole number, got {_kind(val)}; {why}")
    i = int(val)
    if not lo <= i <= hi:
        raise ValueError(f"{name}={show(val)}: {why}")
    return i


def flag(name: str, val) -> bool:
    """``val`` as a bool (``True``/``False`` or a numpy bool; 0/1, strings and None refused)."""
    if isinstance(val, bool) or type(val).__name__ == "bool_":
        return bool(val)
    raise ParameterTypeError(f"{name}={show(val)}: expected True or False, got {_kind(val)}")


def choice(name: str, val, choices, why: str) -> str:
    """``val`` if it is one of ``choices`` (strings only)."""
    if not isinstance(val, str):
        raise ParameterTypeError(f"{name}={show(val)}: expected a string, got {_kind(val)}; {why}")
    if val not in choices:
        raise ValueError(f"{name}={show(val)}: {why}")
    return val


def check_mask(mask) -> None:
    """A mask must be None or real numbers in [0, 1] (tensor, array or nested lists; bools are 0/1) of
    shape H×W, 1×H×W or B×1×H×W: a one-line ``ParameterTypeError``/``ValueError`` naming ``mask`` otherwise."""
    if mask is None:
        return
    fix = "pass an H×W float tensor or array in [0, 1] (or diffstyle_lab.images.load_mask(path))"
    try:
        m = torch.as_tensor(mask)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise ParameterTypeError(f"mask={show(mask)}: not numbers ({_kind(mask)}); {fix}") from None
    if m.dtype.is_complex:
        raise ParameterTypeError(f"mask={show(mask)}: complex values; {fix}")
    if m.numel() == 0:
        raise ValueError(f"mask={show(mask)}: empty; {fix}")
    maths.resize_mask(m, (1, 1))        # shape, finiteness and range, one line naming the mask
