"""Named hook points on a diffusers U-Net, and the split forward of the asymmetric step.

Hook points (``docs/method.md`` §3), stated as data (a new point is one entry):

* ``"h"`` — the output of ``unet.mid_block`` (the bottleneck, "h-space");
* ``"g"`` — the skip connection that the first decoder block concatenates with h: the last entry
  of the residuals handed to ``unet.up_blocks[0]``;
* ``"skips[k]"`` — every skip connection handed to decoder block ``k`` (a tuple, deepest first as the
  block receives them), one site per up block of the model (:data:`INDEXED_SITES`, counted per model class
  by :data:`MODEL_SITES`).

Hooks attach to module boundaries only (``mid_block``, ``up_blocks[k]``), work whether the U-Net passes the
skips by position (``UNet2DModel``) or by keyword (``UNet2DConditionModel``), and live inside a ``with``
block, so none outlives its call, even when the block raises. A hook function gets the tensor at its site
(and the site's name, if it takes a ``site`` keyword) and returns a replacement or ``None``::

    hu = HookedUNet(unet)
    with hu.hooks(h=lambda h: 0 * h):          # replace h
        eps = hu.eps(x, t)
    with hu.record() as cache:                  # read h and g
        hu.eps(x, t)
    cache["h"], cache["g"]
    with hu.hooks(**{"skips[1]": lambda r: tuple(0.5 * x for x in r)}):   # scale decoder block 1's skips
        eps = hu.eps(x, t)

Nothing else in the package registers a forward hook on the U-Net (a test says so): training regularisers
that span many forwards use :meth:`HookedUNet.attach` and remove its handles themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import warnings
from typing import Callable

import torch

HookFn = Callable[..., "torch.Tensor | tuple | None"]


@dataclasses.dataclass(frozen=True)
class HookSite:
    """Where a named tensor lives: ``module``, a dotted path in the U-Net (``unet.get_submodule``), and
    ``kind``: ``"output"`` (the module's output), ``"last_skip"`` (the last residual handed to the module) or
    ``"skips"`` (all residuals handed to the module, as a tuple)."""
    module: str
    kind: str
    about: str = ""


HOOK_SITES: dict[str, HookSite] = {
    "h": HookSite("mid_block", "output", "the bottleneck: h-space"),
    "g": HookSite("up_blocks.0", "last_skip", "the skip connection the first decoder block concatenates with h"),
}
HOOK_POINTS = tuple(HOOK_SITES)   # the package's own points; HOOK_SITES is the registry

# Indexed families of sites, ``"name[k]"`` (pyvene's ``"h[%s]"``): the site of index k.
INDEXED_SITES: dict[str, Callable[[int], HookSite]] = {
    "skips": lambda k: HookSite(f"up_blocks.{k}", "skips", f"the skip connections decoder block {k} concatenates"),
}
# Per model class: how many sites of each indexed family a U-Net of that class has.
_PER_UP_BLOCK = {"skips": lambda unet: len(unet.up_blocks)}
MODEL_SITES: dict[str, dict[str, Callable]] = {"UNet2DModel": _PER_UP_BLOCK, "UNet2DConditionModel": _PER_UP_BLOCK}


def hook_sites(unet) -> dict[str, HookSite]:
    """Every hook site of ``unet``, by name: :data:`HOOK_SITES` and the indexed families its class has
    (a class not in :data:`MODEL_SITES` is counted like ``UNet2DModel``)."""
    sites = dict(HOOK_SITES)
    for family, count in MODEL_SITES.get(type(unet).__name__, _PER_UP_BLOCK).items():
        sites.update({f"{family}[{k}]": INDEXED_SITES[family](k) for k in range(count(unet))})
    return sites


def _caller(fn: HookFn, name: str):
    """``fn`` as a one-argument function; a function with a ``site`` keyword is told its site's name."""
    try:
        wants = "site" in inspect.signature(fn).parameters
    except (TypeError, ValueError):        # builtins without a signature
        wants = False
    return (lambda x: fn(x, site=name)) if wants else fn


def _check_shape(name: str, new, old) -> None:
    if new.shape != old.shape:
        raise ValueError(f"hook {name!r} returned shape {tuple(new.shape)}, expected {tuple(old.shape)}")


def _on_output(module, fn: HookFn, name: str):
    call = _caller(fn, name)

    def hook(mod, args, out):
        new = call(out)
        if new is not None:
            _check_shape(name, new, out)
        return new
    return module.register_forward_hook(hook)


def _on_residuals(module, edit: Callable[[tuple], "tuple | None"]):
    """A pre-hook on a decoder block that hands ``edit`` the block's residuals (positional in ``UNet2DModel``,
    the keyword ``res_hidden_states_tuple`` in ``UNet2DConditionModel``) and passes on what it returns."""
    def hook(mod, args, kwargs):
        by_kw = "res_hidden_states_tuple" in kwargs
        res = kwargs["res_hidden_states_tuple"] if by_kw else args[1]
        new = edit(tuple(res))
        if new is None:
            return None
        if by_kw:
            return args, {**kwargs, "res_hidden_states_tuple": new}
        return (args[0], new) + tuple(args[2:]), kwargs
    return module.register_forward_pre_hook(hook, with_kwargs=True)


def _on_last_skip(module, fn: HookFn, name: str):
    call = _caller(fn, name)

    def edit(res):
        new = call(res[-1])
        if new is None:
            return None
        _check_shape(name, new, res[-1])
        return res[:-1] + (new,)
    return _on_residuals(module, edit)


def _on_skips(module, fn: HookFn, name: str):
    call = _caller(fn, name)

    def edit(res):
        new = call(res)
        if new is None:
            return None
        new = tuple(new)
        if len(new) != len(res):
            raise ValueError(f"hook {name!r} returned {len(new)} skips, expected {len(res)}")
        for a, b in zip(new, res):
            _check_shape(name, a, b)
        return new
    return _on_residuals(module, edit)


ATTACH = {"output": _on_output, "last_skip": _on_last_skip, "skips": _on_skips}   # HookSite.kind → how a hook is attached


class NoMiddleBlockError(ValueError):
    pass


def check_unet(unet) -> None:
    """Raise a precise error if ``unet`` has no middle block or no decoder to read g from."""
    if getattr(unet, "mid_block", None) is None:
        raise NoMiddleBlockError(
            f"{type(unet).__name__} has no mid_block, so it has no h-space: content injection needs "
            "a U-Net whose bottleneck is a middle block (diffusers UNet2DModel or UNet2DConditionModel "
            "built with a mid_block_type; e.g. google/ddpm-ema-celebahq-256)")
    if not getattr(unet, "up_blocks", None):
        raise ValueError(f"{type(unet).__name__} has no up_blocks: cannot locate the skip connection g")


def _splittable(unet) -> bool:
    from diffusers import UNet2DModel
    if type(unet) is not UNet2DModel:
        return False
    blocks = list(unet.down_blocks) + list(unet.up_blocks)
    return not any(hasattr(b, "skip_conv") for b in blocks)


class HookedUNet:
    """A diffusers U-Net with named hook points and, where the layout is known, a split forward."""

    def __init__(self, unet):
        check_unet(unet)
        self.unet = unet
        self.can_split = _splittable(unet)

    # -- plain calls ------------------------------------------------------------------------
    @property
    def device(self):
        return next(self.unet.parameters()).device

    @property
    def dtype(self):
        return next(self.unet.parameters()).dtype

    def eps(self, x: torch.Tensor, t, **cond) -> torch.Tensor:
        """ε(x_t): the stock forward."""
        return self.unet(x, self._t(t, x), **cond).sample

    def _t(self, t, x):
        if torch.is_tensor(t):
            return t.to(x.device)
        return torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)

    # -- hooks -------------------------------------------------------------------------------
    @property
    def sites(self) -> dict[str, HookSite]:
        """This U-Net's hook sites by name (:func:`hook_sites`)."""
        return hook_sites(self.unet)

    def attach(self, **fns: HookFn | None) -> list:
        """Attach functions to named sites and return the handles (``handle.remove()`` detaches). For
        training regularisers that span many forwards; everything else uses the ``with``-scoped :meth:`hooks`."""
        sites = self.sites
        unknown = sorted(set(fns) - set(sites))
        if unknown:
            families = ", ".join(f"{f}[0..{sum(n.startswith(f + '[') for n in sites) - 1}]" for f in INDEXED_SITES)
            raise ValueError(f"unknown hook point(s) {unknown}; choose from {tuple(HOOK_SITES)} or {families}")
        handles = []
        try:
            for name, fn in fns.items():
                if fn is not None:
                    site = sites[name]
                    handles.append(ATTACH[site.kind](self.unet.get_submodule(site.module), fn, name))
        except BaseException:
            for hd in handles:
                hd.remove()
            raise
        return handles

    @contextlib.contextmanager
    def hooks(self, h: HookFn | None = None, g: HookFn | None = None, **more: HookFn | None):
        """Attach functions to the hook points (:data:`HOOK_SITES`, ``skips[k]``) for the duration of the block.

        Each function gets the tensor at its point (a tuple for ``skips[k]``) and returns a replacement (same
        shape) or ``None`` to leave it unchanged; one with a ``site`` keyword is also told the site's name.
        """
        handles = self.attach(h=h, g=g, **more)
        try:
            yield self
        finally:
            for hd in handles:
                hd.remove()

    @contextlib.contextmanager
    def record(self, *names: str):
        """Record the tensors at ``names`` (default: h and g) of the next forward into a dict."""
        names = names or HOOK_POINTS
        cache: dict[str, torch.Tensor] = {}

        def keep(x, site):
            cache[site] = tuple(r.detach() for r in x) if isinstance(x, tuple) else x.detach()

        with self.hooks(**{n: keep for n in names}):
            yield cache

    def has_hooks(self) -> bool:
        """True if any forward hook is attached to the hook points (used by tests)."""
        mods = [self.unet.get_submodule(site.module) for site in self.sites.values()]
        return any(m._forward_hooks or m._forward_pre_hooks for m in mods)

    # -- split forward (UNet2DModel) -------------------------------------------------------------
    def down_mid(self, x: torch.Tensor, t):
        """Down path and middle block once: returns ``(h, state)`` where ``state`` holds the skips
        and the time embedding for :meth:`up`. g is ``state["skips"][-1]``."""
        u = self.unet
        if u.config.center_input_sample:
            x = 2 * x - 1.0
        ts = self._t(t, x)
        emb = u.time_embedding(u.time_proj(ts).to(dtype=self.dtype))
        if u.class_embedding is not None:
            raise ValueError("class-conditional UNet2DModel: the split forward does not handle class labels")
        sample = u.conv_in(x)
        skips = (sample,)
        for block in u.down_blocks:
            sample, res = block(hidden_states=sample, temb=emb)
            skips += res
        h = u.mid_block(sample, emb)
        return h, {"skips": skips, "emb": emb, "t": ts}

    def up(self, h: torch.Tensor, state) -> torch.Tensor:
        """Up path from a (possibly replaced) h on the shared skips: ε(x_t | h)."""
        u = self.unet
        skips, emb = state["skips"], state["emb"]
        sample = h
        for block in u.up_blocks:
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            sample = block(sample, res, emb)
        sample = u.conv_out(u.conv_act(u.conv_norm_out(sample)))
        if u.config.time_embedding_type == "fourier":
            sample = sample / state["t"].reshape((sample.shape[0],) + (1,) * (sample.dim() - 1))
        return sample

    def asymmetric_eps(self, x: torch.Tensor, t, edit: Callable[[torch.Tensor], torch.Tensor],
                       force_doubling: bool = False, **cond):
        """ε(x_t) and ε(x_t | h̃) with h̃ = ``edit(h)``, sharing one down path where possible.

        Returns ``(eps, eps_tilde, h, h_tilde, g)``. Layouts the split forward does not know (and
        ``force_doubling=True``) use batch doubling: the stock forward on [x, x] with the h hook
        replacing the second half.
        """
        if self.can_split and not force_doubling and not cond:
            h, state = self.down_mid(x, t)
            g = state["skips"][-1]
            h_tilde = edit(h)
            eps = self.up(h, state)
            eps_tilde = self.up(h_tilde, state)
            return eps, eps_tilde, h, h_tilde, g
        if not force_doubling and not getattr(self, "_warned", False) and not self.can_split:
            warnings.warn(f"{type(self.unet).__name__}: layout not known to the split forward; using batch "
                          "doubling (one extra down path per editing step)", stacklevel=2)
            self._warned = True
        b = x.shape[0]
        box = {}

        def g_hook(gv):
            box["g"] = gv[:b].detach()

        def h_hook(hv):
            h0 = hv[:b]
            ht = edit(h0)
            box["h"], box["h_tilde"] = h0, ht
            return torch.cat([h0, ht])
        cond2 = {k: (torch.cat([v, v]) if torch.is_tensor(v) else v) for k, v in cond.items()}
        with self.hooks(h=h_hook, g=g_hook):
            out = self.eps(torch.cat([x, x]), torch.cat([self._t(t, x)] * 2), **cond2)
        eps, eps_tilde = out[:b], out[b:]
        return eps, eps_tilde, box["h"], box["h_tilde"], box.get("g")


# =============================================================================================
# The U-Net's layout: which block is which, and where h and g are read

def block_table(model):
    """Every top-level block of ``model``'s U-Net in execution order, with its output shape,
    parameter count and where h and g are read (a pandas DataFrame; ``attrs["h"]``, ``attrs["g"]``).

    One forward pass on zeros under :meth:`HookedUNet.record` gives h and g; the other blocks'
    shapes follow from the config (each down block but the last halves the grid, each up block but
    the last doubles it), checked against the recorded h and g.
    """
    import pandas as pd
    hu: HookedUNet = model.hooked
    u, s = hu.unet, model.sample_size
    x = torch.zeros(1, model.in_channels, s, s, device=hu.device, dtype=hu.dtype)
    with torch.no_grad(), hu.record() as rec:
        hu.eps(x, 0)
    chans, n = list(u.config.block_out_channels), len(u.down_blocks)
    down = [(chans[i], s // 2 ** min(i + 1, n - 1)) for i in range(n)]              # (C, side) out
    up = [(chans[::-1][i], s // 2 ** max(n - 2 - i, 0)) for i in range(len(u.up_blocks))]
    h, g = tuple(rec["h"].shape[1:]), tuple(rec["g"].shape[1:])
    if h != (chans[-1], down[-1][1], down[-1][1]) or g != (down[-1][0], down[-1][1], down[-1][1]):
        raise ValueError(f"block_table: recorded h {h} and g {g} do not fit the layout of "
                         f"{type(u).__name__} (block_out_channels={chans}); no table for this U-Net")
    rows = [("conv_in", u.conv_in, (chans[0], s), "")]
    rows += [(f"down_blocks[{i}]", b, down[i], "g = its last output" if i == n - 1 else "")
             for i, b in enumerate(u.down_blocks)]
    rows += [("mid_block", u.mid_block, (h[0], h[-1]), "h = this output")]
    rows += [(f"up_blocks[{i}]", b, up[i], "input: cat(h, g); g = last skip of the down path" if i == 0 else "")
             for i, b in enumerate(u.up_blocks)]
    rows += [("conv_out", u.conv_out, (u.config.out_channels, s), "")]
    df = pd.DataFrame([{"block": name, "type": type(mod).__name__, "output (C×H×W)": f"{c}×{side}×{side}",
                        "parameters": sum(p.numel() for p in mod.parameters()), "hook point": note}
                       for name, mod, (c, side), note in rows])
    df.attrs["h"], df.attrs["g"] = h, g
    return df
