"""The maths of one step, as plain functions to read next to the paper's equations.

Notation (``docs/method.md`` §2): ``a_t`` is ᾱ_t, ``a_prev`` is ᾱ_{t−1} (1 for the last step),
``eps`` is ε(x_t), ``eps_tilde`` is ε(x_t | h̃_t). Every ``a_*`` argument is a float or a tensor
broadcastable against the images.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F

_EPS = 1e-12


def pred_x0(x_t, eps, a_t):
    """P_t(ε) = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t — the predicted x_0."""
    return (x_t - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5


def ddim_sigma(a_t, a_prev, eta: float):
    """σ_t = η·√((1−ᾱ_{t−1})/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_{t−1}); η = 0 is deterministic DDIM."""
    if eta == 0:
        return 0.0 * a_t
    return eta * ((1 - a_prev) / (1 - a_t)) ** 0.5 * (1 - a_t / a_prev) ** 0.5


def direction(eps, a_prev, sigma):
    """D_t(ε) = √(1−ᾱ_{t−1}−σ_t²)·ε — the direction pointing to x_t."""
    return (1 - a_prev - sigma ** 2).clamp_min(0) ** 0.5 * eps if torch.is_tensor(a_prev) else \
        max(0.0, 1 - a_prev - sigma ** 2) ** 0.5 * eps


def ddim_step(x0, eps_dir, a_prev, sigma=0.0, noise=None):
    """x_{t−1} = √ᾱ_{t−1}·P_t + D_t + σ_t·z, with P_t = ``x0`` and D_t built from ``eps_dir``."""
    out = a_prev ** 0.5 * x0 + direction(eps_dir, a_prev, sigma)
    if noise is not None:
        out = out + sigma * noise
    return out


def asymmetric_step(x_t, eps_tilde, eps, a_t, a_prev, sigma=0.0, noise=None):
    """x_{t−1} = √ᾱ_{t−1}·P_t(ε̃) + D_t(ε) + σ_t·z — the paper's asymmetric step (its eq. for the
    reverse process with h̃): the predicted x_0 sees the injected ε̃ = ε(x_t | h̃), the direction keeps
    ε = ε(x_t | h). With ``eps_tilde is eps`` it is the plain DDIM step."""
    return ddim_step(pred_x0(x_t, eps_tilde, a_t), eps, a_prev, sigma, noise)


def eps_from_x0(x_t, x0, a_t):
    """The ε for which P_t(ε) = ``x0``: (x_t − √ᾱ_t·x_0) / √(1−ᾱ_t)."""
    return (x_t - a_t ** 0.5 * x0) / (1 - a_t) ** 0.5


def ddim_inversion_step(x_t, eps, a_t, a_next):
    """One deterministic DDIM step *up* the chain: x_{t'} = √ᾱ_{t'}·P_t(ε) + √(1−ᾱ_{t'})·ε, t' > t."""
    return a_next ** 0.5 * pred_x0(x_t, eps, a_t) + (1 - a_next) ** 0.5 * eps


# ---------------------------------------------------------------------------------------------
# Mixing h with h^content (docs/method.md §6)
#
# ``region`` (a mask at h's resolution, values in [0, 1]) restricts norms and angles to the masked
# elements, as the paper's local mixing does: ⟨a, b⟩_m = Σ m·a·b, ‖a‖_m = √⟨a, a⟩_m (for a 0/1
# mask: the elements inside it). None: all C·H·W elements.

def _weighted(x: torch.Tensor, region) -> torch.Tensor:
    return (x if region is None else x * region.sqrt()).flatten(1)


def per_sample_norm(x: torch.Tensor, region=None) -> torch.Tensor:
    """‖x‖ over all C·H·W elements of each sample (or ‖x‖_m over ``region``), shaped B×1×…×1."""
    return _weighted(x, region).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))


def slerp(a: torch.Tensor, b: torch.Tensor, gamma: float, region=None) -> torch.Tensor:
    """Slerp(a, b, γ) = sin((1−γ)θ)/sin θ·a + sin(γθ)/sin θ·b, θ = arccos⟨â, b̂⟩, per sample
    (θ from the masked elements when ``region`` is given).

    The cosine is clamped to [−1, 1]; where sin θ ≈ 0 (parallel, opposite or zero vectors) it falls
    back to linear interpolation, so the result is always finite.
    """
    af, bf = _weighted(a, region), _weighted(b, region)
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1)).clamp_min(_EPS)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(theta)
    ok = sin.abs() > 1e-6
    safe = torch.where(ok, sin, torch.ones_like(sin))
    wa = torch.where(ok, torch.sin((1 - gamma) * theta) / safe, torch.full_like(sin, 1 - gamma))
    wb = torch.where(ok, torch.sin(gamma * theta) / safe, torch.full_like(sin, gamma))
    shape = (-1,) + (1,) * (a.dim() - 1)
    return wa.view(shape) * a + wb.view(shape) * b


def normalised_slerp(h: torch.Tensor, h_content: torch.Tensor, gamma: float, region=None) -> torch.Tensor:
    """h̃ = Slerp(h, (h^content/‖h^content‖)·‖h‖, γ): content share γ, and ‖h̃‖ = ‖h‖ (norms and
    angle over ``region`` when given)."""
    target = h_content / per_sample_norm(h_content, region).clamp_min(_EPS) * per_sample_norm(h, region)
    return slerp(h, target, gamma, region)


# ---------------------------------------------------------------------------------------------
# The mixing rules: one registry, read by the config's validation and docstring, the CLI (``--method``'s
# choices and help), the evaluation plan (its ablation and setting labels), Dask workers (the rules a run
# uses travel with it) and the statistics (r_alt's settings). A new rule is one ``register_mix_rule`` call.

@dataclasses.dataclass(frozen=True)
class MixRule:
    """One way of making h̃ from h and h^content with content share γ.

    fn:           ``fn(h, h_content, gamma, region)`` → h̃ (``region``: a mask the rule may restrict its norms to).
    short:        the rule's tag in setting labels (``evaluate.plan``).
    label:        its row in the paper's ablation and in the plots.
    uses_gamma:   False when γ is ignored (γ then drops out of a setting's key).
    ablation:     the fields it changes in the ablation and in r_alt's settings besides ``method`` (the paper's
                  "add" is γ = 1); None keeps it out of both.
    title:        its name in figure legends (default: ``label``).
    line:         its line in figures: (matplotlib colour or None, line style).
    doc:          what it does, in a few words, for the generated method lists (docstrings, ``--help``).
    """
    name: str
    fn: Callable
    short: str
    label: str
    uses_gamma: bool = True
    ablation: dict | None = dataclasses.field(default_factory=dict)
    title: str | None = None
    line: tuple = (None, "-")
    doc: str = ""


MIX_RULES: dict[str, MixRule] = {}
_DOCUMENTED: list = []          # (object, docstring template): the docstrings that list the rules


def register_mix_rule(rule: MixRule) -> MixRule:
    """Add ``rule`` to :data:`MIX_RULES` (a one-line ``ValueError`` if its name is taken) and to the
    docstrings that list the rules."""
    if rule.name in MIX_RULES:
        raise ValueError(f"mixing rule {rule.name!r} exists already; choose another name "
                         "(or unregister_mix_rule it first)")
    MIX_RULES[rule.name] = rule
    document_methods()
    return rule


def unregister_mix_rule(name: str) -> MixRule:
    """Remove a registered rule (e.g. to redefine it in a notebook); the built-in rules stay."""
    if name in BUILTIN_RULES:
        raise ValueError(f"mixing rule {name!r} is built in and stays; register yours under another name")
    if name not in MIX_RULES:
        raise ValueError(f"mixing rule {name!r} is not registered; registered: {mix_methods()}")
    rule = MIX_RULES.pop(name)
    document_methods()
    return rule


def mix_methods() -> tuple[str, ...]:
    """The names of the registered mixing rules, in the ablation's order (crudest first, the paper's last)."""
    return tuple(MIX_RULES)


def methods_text() -> str:
    """The registered rules as one line, ``name (what it does) | …``, for docstrings and ``--help``."""
    return " | ".join(f"{r.name} ({r.doc})" if r.doc else r.name for r in MIX_RULES.values())


def document_methods(obj=None):
    """Write :func:`methods_text` where ``{methods}`` stands in the docstring of ``obj`` (a decorator; it
    keeps the docstring as the template) and of every object documented so far. :func:`register_mix_rule`
    calls it, so ``help()`` and the command line list a rule from the moment it is registered."""
    if obj is not None:
        _DOCUMENTED.append((obj, obj.__doc__))
    for o, template in _DOCUMENTED:
        o.__doc__ = template.replace("{methods}", methods_text())
    return obj


@document_methods
def mix_h(h, h_content, gamma: float, method: str = "normalised_slerp", region=None):
    """h̃ = f(h, h^content, γ) for the paper's method and its ablations, one rule of :data:`MIX_RULES`:
    {methods}.

    ``region`` restricts the Slerps' norms and angle to a mask (the element-wise rules ignore it).
    """
    rule = MIX_RULES.get(method)
    if rule is None:
        raise ValueError(f"method={method!r} is unknown; choose one of {mix_methods()}")
    return rule.fn(h, h_content, gamma, region)


def replace_h(h, h_content, gamma, region=None):
    """h^content (γ ignored)."""
    return h_content.expand_as(h).clone()


def add_h(h, h_content, gamma, region=None):
    """h + γ·h^content."""
    return h + gamma * h_content


def lerp_h(h, h_content, gamma, region=None):
    """(1−γ)·h + γ·h^content."""
    return (1 - gamma) * h + gamma * h_content


for _rule in (MixRule("replace", replace_h, "replace", "replace", uses_gamma=False, line=("C1", "--"),
                      doc="h^content; γ ignored"),
              MixRule("add", add_h, "add", "add", ablation={"gamma": 1.0}, line=("C2", "--"),
                      doc="h + γ·h^content; the paper's add is γ = 1"),
              MixRule("lerp", lerp_h, "lerp", "lerp", line=("C4", ":"), doc="(1−γ)·h + γ·h^content"),
              MixRule("slerp", slerp, "slerp", "slerp", line=("C5", "-."), doc="Slerp, no norm rescaling"),
              MixRule("normalised_slerp", normalised_slerp, "nslerp", "normalised slerp", title="normalised Slerp",
                      line=("k", (0, (1, 2))), doc="the paper: Slerp to h^content rescaled to ‖h‖")):
    register_mix_rule(_rule)
BUILTIN_RULES = frozenset(MIX_RULES)


# Shipping the rules a run uses to Dask workers (which never ran the notebook that registered them)
def mix_rules_payload(names) -> dict[str, bytes]:
    """``{name: bytes}`` of the rules ``names``, pickled with cloudpickle: a rule's function travels by value
    when it is defined in a notebook, a script or inside a function, by name when it lives in an importable
    module (which the workers must then import, as any Dask code). :func:`install_mix_rules` unpacks it."""
    import cloudpickle
    names = list(dict.fromkeys(names))
    unknown = sorted(set(names) - set(MIX_RULES))
    if unknown:
        raise ValueError(f"method={unknown[0]!r} is unknown; choose one of {mix_methods()}")
    return {n: cloudpickle.dumps(MIX_RULES[n]) for n in names}


def install_mix_rules(payload: dict[str, bytes]) -> None:
    """Register the rules of a :func:`mix_rules_payload` here (on a worker): each replaces a rule of the same
    name unless that one pickles to the same bytes, so the sender's definition is the one that runs."""
    import pickle

    import cloudpickle
    for name, blob in payload.items():
        if name in MIX_RULES and cloudpickle.dumps(MIX_RULES[name]) == blob:
            continue
        MIX_RULES[name] = pickle.loads(blob)
    document_methods()


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A user mask (H×W, 1×H×W or B×1×H×W, values in [0, 1]) resized to h's spatial ``size``
    (area averaging when shrinking, bilinear when growing); returns B×1×h×w (B may be 1)."""
    m = torch.as_tensor(mask, dtype=torch.float32)
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        if m.shape[0] != 1:
            raise ValueError(f"mask has shape {tuple(mask.shape)}: a 3-D mask must be 1×H×W; "
                             "pass H×W, 1×H×W or B×1×H×W")
        m = m[None]
    elif m.dim() == 4:
        if m.shape[1] != 1:
            raise ValueError(f"mask has shape {tuple(mask.shape)}: a 4-D mask must be B×1×H×W")
    else:
        raise ValueError(f"mask has {m.dim()} dimensions ({tuple(mask.shape)}); pass H×W, 1×H×W or B×1×H×W")
    if not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ValueError("mask values must be finite and in [0, 1]")
    if tuple(m.shape[-2:]) == tuple(size):
        return m
    if m.shape[-2] >= size[0] and m.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(m, size)
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)


def masked_mix(h, h_tilde, mask):
    """Local mixing: m ⊙ h̃ + (1−m) ⊙ h (mask already at h's resolution)."""
    return mask * h_tilde + (1 - mask) * h


# ---------------------------------------------------------------------------------------------
# Style calibration (docs/method.md §7)

def normalise_like(p_tilde, p):
    """P̃ ← mean(P̃) + (P̃ − mean(P̃))·std(P)/std(P̃), per sample over C·H·W."""
    dims = tuple(range(1, p.dim()))
    mu = p_tilde.mean(dims, keepdim=True)
    s_t = p_tilde.std(dims, keepdim=True).clamp_min(_EPS)
    s = p.std(dims, keepdim=True)
    return mu + (p_tilde - mu) * s / s_t


def calibration_shift(x_t, eps, eps_tilde, a_t, omega: float):
    """dx = √ᾱ_t·(norm(P̃) − P) + ω·√(1−ᾱ_t)·(ε̃ − ε): move x̃_t so a plain step lands near the
    injected one. ω = 1 leaves only the normalisation term; ω → 0 approaches the injected step."""
    p = pred_x0(x_t, eps, a_t)
    p_tilde = normalise_like(pred_x0(x_t, eps_tilde, a_t), p)
    return a_t ** 0.5 * (p_tilde - p) + omega * (1 - a_t) ** 0.5 * (eps_tilde - eps)


def is_finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("torch", "F", "annotations")]
