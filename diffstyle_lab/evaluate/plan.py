"""What an evaluation runs: the swept settings (a view of :class:`~diffstyle_lab.InjectionConfig`),
the sweeps around a base setting, and the content/style pairs."""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import torch

from .. import maths
from ..config import InjectionConfig
from ..fileio import sha256_hex

GAMMAS = tuple(round(0.1 * k, 1) for k in range(11))
T_EDITS = (200, 300, 400, 500, 600, 700, 800, 900)
OMEGAS = (0.0, 0.3, 0.6, 1.0)

SWEPT_FIELDS = ("gamma", "t_edit", "t_boost", "omega", "calibrate", "method")   # of InjectionConfig
_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(InjectionConfig)}


class _SettingMethods:
    def __post_init__(self):
        # each value takes the type of InjectionConfig's default (numpy scalars, ints for floats, …)
        for name in SWEPT_FIELDS:
            object.__setattr__(self, name, type(_CONFIG_FIELDS[name].default)(getattr(self, name)))

    @classmethod
    def from_config(cls, cfg: InjectionConfig) -> "Setting":
        """The swept fields of ``cfg`` (e.g. ``InjectionConfig.for_model(model)`` as a sweep's base)."""
        return cls(**{name: getattr(cfg, name) for name in SWEPT_FIELDS})

    def config(self, steps: int = 50, spacing: str = "authors", seed: int = 0, **fixed) -> InjectionConfig:
        """The full :class:`InjectionConfig`: these fields, the grid and seed given and the other ``fixed``
        fields (the same for every setting of a run, e.g. ``inject_every``); the rest at its defaults."""
        swept = sorted(set(fixed) & set(SWEPT_FIELDS))
        if swept:
            raise ValueError(f"{', '.join(swept)}: swept by the plan's settings, not a fixed field of the run")
        return InjectionConfig(**dataclasses.asdict(self), steps=steps, spacing=spacing, seed=int(seed),
                               **fixed).validate()

    def key(self) -> dict:
        """Canonical parameters (ω dropped when calibration is off; γ dropped for 'replace')."""
        return {"gamma": round(float(self.gamma), 6) if maths.MIX_RULES[self.method].uses_gamma else None,
                "t_edit": int(self.t_edit), "t_boost": int(self.t_boost),
                "omega": round(float(self.omega), 6) if self.calibrate else None,
                "calibrate": bool(self.calibrate), "method": self.method}

    @property
    def label(self) -> str:
        k = self.key()
        s = maths.MIX_RULES[self.method].short + ("" if k["gamma"] is None else f"_g{k['gamma']:g}")
        s += f"_te{self.t_edit}_tb{self.t_boost}"
        return s + (f"_cal_w{k['omega']:g}" if self.calibrate else "")


Setting = dataclasses.make_dataclass(
    "Setting", [(name, _CONFIG_FIELDS[name].type, dataclasses.field(default=_CONFIG_FIELDS[name].default))
                for name in SWEPT_FIELDS], bases=(_SettingMethods,), frozen=True)
Setting.__module__ = __name__               # where pickle (Dask workers) finds it
Setting.__doc__ = (f"The injection parameters a sweep varies, {', '.join(SWEPT_FIELDS)}: a frozen view of "
                   ":class:`~diffstyle_lab.InjectionConfig` with its defaults (see there for each parameter). "
                   "``omega`` only matters with ``calibrate=True``.")


def fixed_config_fields(**fixed) -> dict:
    """Every field of the configs a run makes that no setting varies (``fixed``, else InjectionConfig's
    default), for the run's identity: a change of such a default gives new setting ids, not stale blocks."""
    return {k: v for k, v in Setting().config(**fixed).to_dict().items() if k not in SWEPT_FIELDS}


@dataclasses.dataclass(frozen=True)
class PlanEntry:
    """One point of a sweep: ``sweep`` name, its x value (number or ablation name) and the setting."""

    sweep: str
    x: object
    setting: Setting


def gamma_sweep(base: Setting = Setting(), gammas: Sequence[float] = GAMMAS) -> list[PlanEntry]:
    """γ ∈ {0, 0.1, …, 1} at the base t_edit/t_boost (normalised Slerp, no calibration)."""
    return [PlanEntry("gamma", float(g), dataclasses.replace(base, gamma=float(g), calibrate=False,
                                                             method="normalised_slerp")) for g in gammas]


def t_edit_sweep(base: Setting = Setting(), t_edits: Sequence[int] = T_EDITS) -> list[PlanEntry]:
    """t_edit over the trajectory (t_boost capped at t_edit)."""
    return [PlanEntry("t_edit", int(t), dataclasses.replace(base, t_edit=int(t), t_boost=min(base.t_boost, int(t)),
                                                            calibrate=False, method="normalised_slerp"))
            for t in t_edits]


def omega_sweep(base: Setting = Setting(), omegas: Sequence[float] = OMEGAS) -> list[PlanEntry]:
    """ω with style calibration switched on."""
    return [PlanEntry("omega", float(w), dataclasses.replace(base, omega=float(w), calibrate=True,
                                                             method="normalised_slerp")) for w in omegas]


def ablation_rows() -> dict[str, dict]:
    """The ablation's rows: what each changes in normalised Slerp without calibration. One row per mixing rule
    of :data:`~diffstyle_lab.maths.MIX_RULES` (its ``label``, its ``ablation`` fields), then the paper's method
    with calibration."""
    rows = {r.label: {"method": r.name, **r.ablation} for r in maths.MIX_RULES.values() if r.ablation is not None}
    return {**rows, "normalised slerp + calibration": {"method": "normalised_slerp", "calibrate": True}}


def ablation_names() -> tuple[str, ...]:
    """The ablation's row names, in the order of the figures."""
    return tuple(ablation_rows())


def ablation(base: Setting = Setting()) -> list[PlanEntry]:
    """The paper's ablation, one row per :func:`ablation_rows` entry (each registered mixing rule that takes part,
    then normalised Slerp + calibration with ω = base ω); γ and t_edit from ``base``."""
    b = dataclasses.replace(base, calibrate=False, method="normalised_slerp")
    return [PlanEntry("ablation", name, dataclasses.replace(b, **change)) for name, change in ablation_rows().items()]


def default_plan(base: Setting = Setting(), gammas=GAMMAS, t_edits=T_EDITS, omegas=OMEGAS) -> list[PlanEntry]:
    """The four sweeps (γ, t_edit, ω, ablation) around ``base`` (by default InjectionConfig's defaults; for a
    model's own defaults ``Setting.from_config(InjectionConfig.for_model(model))``). Settings shared by
    several sweeps are computed once."""
    return gamma_sweep(base, gammas) + t_edit_sweep(base, t_edits) + omega_sweep(base, omegas) + ablation(base)


def quick_plan(base: Setting = Setting()) -> list[PlanEntry]:
    """A smaller grid for development (every sweep present, fewer points)."""
    return default_plan(base, gammas=(0.0, 0.3, 0.7, 1.0), t_edits=(200, 400, 600, 800), omegas=(0.0, 0.6, 1.0))


def digest(obj) -> str:
    return sha256_hex(json.dumps(obj, sort_keys=True, default=str))


def setting_ids(plan: Sequence[PlanEntry], ctx_hash: str) -> dict:
    """``{entry: setting id}``; entries whose settings are the same injection (canonical key) share an id."""
    return {e: f"{e.setting.label}-{digest([e.setting.key(), ctx_hash])[:10]}" for e in plan}


@dataclasses.dataclass
class PairSet:
    """Content/style image pairs (N×3×H×W in [−1, 1]) and, for avatar data, their ground-truth factors."""

    content: torch.Tensor
    style: torch.Tensor
    content_factors: list | None = None
    style_factors: list | None = None
    name: str = "pairs"

    def __post_init__(self):
        if self.content.shape != self.style.shape:
            raise ValueError(f"content {tuple(self.content.shape)} and style {tuple(self.style.shape)} differ in shape")
        for f in (self.content_factors, self.style_factors):
            if f is not None and len(f) != len(self.content):
                raise ValueError("one factor record per pair is needed")

    @classmethod
    def from_avatars(cls, n: int, seed: int = 70_000, size: int = 32) -> "PairSet":
        """``n`` DiceBear content/style pairs (different content and colours) with ground truth."""
        from ..faces import avatars
        from ..faces.factors import to_tensor
        c, s, cf, sf = avatars.content_style_pairs(n, seed, size)
        return cls(to_tensor(c), to_tensor(s), cf, sf, name=f"avatars(n={n}, seed={seed}, size={size})")

    def __len__(self):
        return len(self.content)

    @property
    def has_factors(self) -> bool:
        return self.content_factors is not None and self.style_factors is not None

    def fingerprint(self) -> str:
        parts = [x.detach().float().cpu().contiguous().numpy().tobytes() for x in (self.content, self.style)]
        if self.has_factors:
            parts.append(json.dumps([dataclasses.asdict(f) for f in self.content_factors + self.style_factors]))
        return sha256_hex(parts)

