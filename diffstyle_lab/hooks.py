"""Named hook points on a diffusers U-Net, and the split forward of the asymmetric step.

Hook points (``docs/method.md`` §3), stated as data in :data:`HOOK_SITES` (a new point is one entry):

* ``"h"`` — the output of ``unet.mid_block`` (the bottleneck, "h-space");
* ``"g"`` — the skip connection that the first decoder block concatenates with h: the last entry
  of the residuals handed to ``unet.up_blocks[0]``.

Hooks attach to module boundaries only (``mid_block``, ``up_blocks[0]``) and live inside a
``with`` block, so none outlives its call, even when the block raises::

    hu = HookedUNet(unet)
    with hu.hooks(h=lambda h: 0 * h):          # replace h
        eps = hu.eps(x, t)
    with hu.record() as cache:                  # read h and g
        hu.eps(x, t)
    cache["h"], cache["g"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Callable

import torch

HookFn = Callable[[torch.Tensor], "torch.Tensor | None"]


@dataclasses.dataclass(frozen=True)
class HookSite:
    """Where a named tensor lives: ``module``, a dotted path in the U-Net (``unet.get_submodule``), and
    ``kind``: ``"output"`` (the module's output) or ``"last_skip"`` (the last residual handed to the module)."""
    module: str
    kind: str
    about: str = ""


HOOK_SITES: dict[str, HookSite] = {
    "h": HookSite("mid_block", "output", "the bottleneck: h-space"),
    "g": HookSite("up_blocks.0", "last_skip", "the skip connection the first decoder block concatenates with h"),
}
HOOK_POINTS = tuple(HOOK_SITES)   # the package's own points; HOOK_SITES is the registry


def _on_output(module, fn: HookFn, name: str):
    def hook(mod, args, out):
        new = fn(out)
        if new is not None and new.shape != out.shape:
            raise ValueError(f"hook {name!r} returned shape {tuple(new.shape)}, expected {tuple(out.shape)}")
        return new
    return module.register_forward_hook(hook)


def _on_last_skip(module, fn: HookFn, name: str):
    def hook(mod, args, kwargs):
        if "res_hidden_states_tuple" in kwargs:
            res = kwargs["res_hidden_states_tuple"]
        else:
            res = args[1]
        new = fn(res[-1])
        if new is None:
            return None
        if new.shape != res[-1].shape:
            raise ValueError(f"hook {name!r} returned shape {tuple(new.shape)}, expected {tuple(res[-1].shape)}")
        res = tuple(res[:-1]) + (new,)
        if "res_hidden_states_tuple" in kwargs:
            return args, {**kwargs, "res_hidden_states_tuple": res}
        return (args[0], res) + tuple(args[2:]), kwargs
    return module.register_forward_pre_hook(hook, with_kwargs=True)


ATTACH = {"output": _on_output, "last_skip": _on_last_skip}   # HookSite.kind → how a hook is attached


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
    @contextlib.contextmanager
    def hooks(self, h: HookFn | None = None, g: HookFn | None = None, **more: HookFn | None):
        """Attach functions to the hook points (:data:`HOOK_SITES`) for the duration of the block.

        Each function gets the tensor at its point and returns a replacement (same shape) or
        ``None`` to leave it unchanged.
        """
        fns = {"h": h, "g": g, **more}
        unknown = sorted(set(fns) - set(HOOK_SITES))
        if unknown:
            raise ValueError(f"unknown hook point(s) {unknown}; choose from {tuple(HOOK_SITES)}")
        handles = []
        try:
            for name, site in HOOK_SITES.items():
                if fns.get(name) is not None:
                    handles.append(ATTACH[site.kind](self.unet.get_submodule(site.module), fns[name], name))
            yield self
        finally:
            for hd in handles:
                hd.remove()

    @contextlib.contextmanager
    def record(self, *names: str):
        """Record the tensors at ``names`` (default: h and g) of the next forward into a dict."""
        names = names or HOOK_POINTS
        bad = set(names) - set(HOOK_SITES)
        if bad:
            raise ValueError(f"unknown hook point(s) {sorted(bad)}; choose from {tuple(HOOK_SITES)}")
        cache: dict[str, torch.Tensor] = {}

        def keep(name):
            def fn(x):
                cache[name] = x.detach()
            return fn
        with self.hooks(**{n: keep(n) for n in names}):
            yield cache

    def has_hooks(self) -> bool:
        """True if any forward hook is attached to the hook points (used by tests)."""
        mods = [self.unet.get_submodule(site.module) for site in HOOK_SITES.values()]
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
