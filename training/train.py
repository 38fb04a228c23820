"""Train the small default diffusion model (DDPM ε-objective, linear β, T = 1000, EMA).

``python -m training.train --out DIR --steps N`` (from the repository root) or :func:`train`. Deterministic given the seed
(same data, same noise, same order); resumable from the last checkpoint in ``DIR/checkpoint``;
writes a loss-curve CSV and, at the end, the EMA weights in diffusers format (safetensors).
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from diffstyle_lab.faces.architecture import LAYOUTS, build_scheduler, build_unet, export  # noqa: F401  (T.export …)
from diffstyle_lab.faces.avatars import to_tensor
from diffstyle_lab.fileio import file_sha256, read_json, write_json, write_npz, write_safetensors, write_text

@dataclasses.dataclass
class TrainConfig:
    out: str
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.999
    layout: str = "h4"
    image_size: int = 32
    n_train: int = 12000
    data_seed: int = 0
    seed: int = 0
    checkpoint_every: int = 250
    threads: int = 0  # 0 = torch default
    progress: bool = True
    pose: bool = True          # data: faces in random poses (False: the first model's upright faces)
    init: str = ""             # start from this diffusers model folder's U-Net (fine-tuning) instead of random
    loss: str = "eps"          # "eps": plain ε-MSE (DDPM); "min_snr5": weighted min(SNR, 5)/SNR (Hang et al. 2023)
    snapshot_every: int = 0    # also export the EMA weights every N steps to DIR/snapshots/step_N (0: never)
    skip_drop: float = 0.0     # training only: per sample, drop the coarsest up blocks' skips with this probability
    skip_drop_levels: int = 2  # ... of this many up blocks (2: the 4x4 and 8x8 levels of "h4")
    skip_drop_tmin: int = 100  # ... at noise levels t >= this (inference always keeps every skip)
    skip_drop_mode: str = "zero"  # a dropped skip becomes 0 ("zero") or its spatial mean per channel ("mean")
    colour_swap: float = 0.0   # training only: per sample, h comes from the same face in other colours (a twin)
    colour_swap_on: str = "any"  # ... drawn for any sample ("any"), or only where the skips are dropped ("dropped")
    content_swap: float = 0.0  # training only: per sample, h *and the target* come from another face in the same colours
    content_swap_tmin: int = 200    # ... at noise levels t >= this
    content_swap_tmax: int = 999    # ... and t <= this
    content_swap_same_pose: float = 0.0  # ... share of those other faces that keep the sample's pose (identity-only)
    schedule: str = "constant"  # learning rate after the warm-up: "constant" or "cosine" (down to lr/10 at the end)


def _data_cache(cfg: TrainConfig) -> Path:
    tag = "_pose" if cfg.pose else ""
    return Path(cfg.out) / f"train_faces_{cfg.n_train}_{cfg.data_seed}_{cfg.image_size}{tag}.npz"


def _training_data(cfg: TrainConfig) -> torch.Tensor:
    cache = _data_cache(cfg)
    want = (cfg.n_train, cfg.image_size, cfg.image_size, 3)
    x = np.load(cache, allow_pickle=False)["images"] if cache.exists() else None
    if x is None or x.shape != want or not Path(str(cache) + ".factors.json").exists():   # verified before use
        from diffstyle_lab.faces.avatars import make_faces, save_factors
        x, fs = make_faces(cfg.n_train, cfg.data_seed, cfg.image_size, pose=cfg.pose)
        save_factors(str(cache) + ".factors.json", fs)      # the factors first: the images mark a finished cache
        write_npz(cache, compressed=True, images=x)
    return to_tensor(x)


def _colour_twins(cfg: TrainConfig) -> torch.Tensor:
    """Each training face again with the same content factors (identity, pose) in freshly drawn colours."""
    data = _data_cache(cfg)
    cache = data.with_name(data.stem + "_twins.npz")
    fs = read_json(str(data) + ".factors.json", expect=list)
    twins = np.load(cache, allow_pickle=False)["images"] if cache.exists() else None
    if twins is None or twins.shape != (len(fs), cfg.image_size, cfg.image_size, 3):   # verified before use
        from diffstyle_lab.faces.avatars import Factors, render, same_identity_other_colours
        rng = np.random.default_rng([cfg.data_seed, 2])
        twins = np.stack([render(same_identity_other_colours(Factors(**d), rng), cfg.image_size) for d in fs])
        write_npz(cache, compressed=True, images=twins)
    return to_tensor(twins)


def _content_twins(cfg: TrainConfig) -> torch.Tensor:
    """Each training face's *content twin*: another identity (and, but for a ``content_swap_same_pose`` share of
    them, another pose) of the same family in the same colours (:func:`avatars.other_identity_same_colours`)."""
    data = _data_cache(cfg)
    cache = data.with_name(data.stem + f"_content_twins_{cfg.content_swap_same_pose:g}.npz")
    fs = read_json(str(data) + ".factors.json", expect=list)
    twins = np.load(cache, allow_pickle=False)["images"] if cache.exists() else None
    if twins is None or twins.shape != (len(fs), cfg.image_size, cfg.image_size, 3):   # verified before use
        from diffstyle_lab.faces.avatars import POSE_KEYS, Factors, other_identity_same_colours, render
        rng = np.random.default_rng([cfg.data_seed, 3])
        out = []
        for d in fs:
            f = Factors(**d)
            keep = rng.random() < cfg.content_swap_same_pose
            o = other_identity_same_colours(f, rng, pose=cfg.pose)
            if keep:
                o = dataclasses.replace(o, **{k: getattr(f, k) for k in POSE_KEYS})
            out.append(render(o, cfg.image_size))
        twins = np.stack(out)
        write_npz(cache, compressed=True, images=twins)
    return to_tensor(twins)


def _save_state(path: Path, model, ema, opt, step: int, cfg: TrainConfig):
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.contiguous() for k, v in ema.state_dict().items()})
    for i, st in enumerate(opt.state.values()):
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{i}.{k}"] = v.contiguous()
    write_safetensors(path / "state.safetensors", tensors)
    write_json(path / "state.json", {"step": step, "config": dataclasses.asdict(cfg),       # last: marks it whole
                                     "sha256": file_sha256(path / "state.safetensors")}, indent=None)


def _load_state(path: Path, model, ema, opt) -> int:
    from safetensors.torch import load_file
    meta = read_json(path / "state.json", "; delete the checkpoint folder to train from the start")
    if "sha256" in meta and meta["sha256"] != file_sha256(path / "state.safetensors"):
        raise ValueError(f"{path / 'state.safetensors'} does not match {path / 'state.json'} (a write was cut short?); "
                         "delete the checkpoint folder to train from the start")
    t = load_file(str(path / "state.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
    ema.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")}, strict=True)
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        st = {k.split(".", 2)[2]: v for k, v in t.items() if k.startswith(f"opt.{i}.")}
        if st:
            opt.state[p] = st
    return int(meta["step"])


def loss_weights(loss: str, snr: torch.Tensor) -> torch.Tensor:
    """Per-sample weights of the ε-MSE: 1 (DDPM) or min(SNR, 5)/SNR (min-SNR-5, Hang et al. 2023)."""
    if loss == "eps":
        return torch.ones_like(snr)
    if loss == "min_snr5":
        return snr.clamp(max=5.0) / snr
    raise ValueError(f"loss={loss!r} is unknown; choose 'eps' or 'min_snr5'")


def _check_skip_drop_mode(mode: str) -> None:
    if mode not in ("zero", "mean"):
        raise ValueError(f"skip_drop_mode={mode!r}: choose 'zero' or 'mean' (keep each channel's spatial mean)")


class SkipDropout:
    """Training-time regulariser: zero the skip connections feeding the ``levels`` coarsest up blocks for a
    random subset of the batch (one mask per sample), so the decoder must rebuild coarse structure from h
    (``mode="mean"``: keep each dropped skip's spatial mean, i.e. its colour statistics). Like ScaleLong /
    Skip-Tuning's scaled skips, but only in training: the exported model is a plain ``UNet2DModel``.
    Set ``mask`` (shape (B,), 1 keep / 0 drop) before each forward."""

    def __init__(self, unet, levels: int, mode: str = "zero"):
        from diffstyle_lab.hooks import HookedUNet
        _check_skip_drop_mode(mode)
        self.mask, self.mode = None, mode
        self.handles = HookedUNet(unet).attach(**{f"skips[{k}]": self._edit for k in range(levels)})

    def _edit(self, skips: tuple):
        if self.mask is None:
            return None
        m = self.mask.view(-1, 1, 1, 1).to(skips[0].dtype)
        if self.mode == "mean":
            return tuple(r * m + r.mean((2, 3), keepdim=True) * (1 - m) for r in skips)
        return tuple(r * m for r in skips)

    def remove(self):
        for h in self.handles:
            h.remove()


class _HSwap:
    """Shared machinery of the training-time h swaps: for the chosen samples of the next forward, h (the mid
    block's output) is replaced by the h of a *twin* image (same t and noise). :meth:`prepare` computes the twins'
    h; with ``arm=False`` the hook stays inert until :meth:`arm`, so that two swaps can both be prepared (each
    prepare runs a down path through the mid block) before either hook is armed."""

    def __init__(self, unet, twins: torch.Tensor):
        from diffstyle_lab.hooks import HookedUNet
        self.hooked, self.twins, self.h, self._pending, self.chosen = HookedUNet(unet), twins, None, None, None
        self.handles = self.hooked.attach(h=self._edit)

    def prepare(self, idx, t, eps, a, chosen, arm: bool = True):
        self.chosen, self.h, self._pending = chosen, None, None
        if chosen.any():
            xt = a[chosen].sqrt() * self.twins[idx[chosen]] + (1 - a[chosen]).sqrt() * eps[chosen]
            self._pending = self.hooked.down_mid(xt, t[chosen])[0]
        if arm:
            self.arm()

    def arm(self):
        self.h, self._pending = self._pending, None

    def _edit(self, h: torch.Tensor):
        if self.h is None:
            return None
        out = h.clone()
        out[self.chosen] = self.h.to(out.dtype)     # under autocast the two may differ
        self.h = None                      # used once: by the forward that follows prepare()
        return out

    def remove(self):
        for hd in self.handles:
            hd.remove()


class ColourSwap(_HSwap):
    """Training-time regulariser: for the chosen samples, h (the mid block's output) is computed from the
    same face in other colours (its *twin*, same t and noise) while the skips and the target stay the
    image's own, so colour must come from the skips and h is only worth its layout and identity.
    Call :meth:`prepare` before each forward; the exported model is a plain ``UNet2DModel``."""


class ContentSwap(_HSwap):
    """Training-time regulariser, the complement of :class:`ColourSwap`: for the chosen samples, h is computed
    from *another face in the same colours* (its content twin, same t and noise) while the skips stay the
    sample's own, and the target is that other face: ε target = (x_t − √ᾱ·x0_twin)/√(1−ᾱ) (:meth:`target`).
    So the decoder is taught to take layout and identity from h (and, with the colour swap, never colour).
    Call :meth:`prepare` before each forward; the exported model is a plain ``UNet2DModel``."""

    def target(self, xt, idx, a, eps, chosen):
        """The ε target of every sample: the sample's own noise, or for the chosen ones the ε that would make
        the content twin the predicted x_0 of the sample's x_t."""
        if not chosen.any():
            return eps
        out = eps.clone()
        out[chosen] = (xt[chosen] - a[chosen].sqrt() * self.twins[idx[chosen]]) / (1 - a[chosen]).sqrt()
        return out


def check_config(cfg: TrainConfig) -> None:
    """Every option checked before anything is written (one-line errors naming the option)."""
    loss_weights(cfg.loss, torch.ones(1))
    if not 0.0 <= cfg.skip_drop < 1.0:
        raise ValueError(f"skip_drop={cfg.skip_drop!r}: a probability in [0, 1) (0 switches skip dropout off)")
    if cfg.skip_drop and not 1 <= cfg.skip_drop_levels <= len(LAYOUTS[cfg.layout]["up_block_types"]):
        raise ValueError(f"skip_drop_levels={cfg.skip_drop_levels!r}: between 1 and the layout's number of levels")
    _check_skip_drop_mode(cfg.skip_drop_mode)
    if not 0.0 <= cfg.colour_swap <= 1.0:
        raise ValueError(f"colour_swap={cfg.colour_swap!r}: a probability in [0, 1] (0 switches it off)")
    if cfg.colour_swap_on not in ("any", "dropped"):
        raise ValueError(f"colour_swap_on={cfg.colour_swap_on!r}: choose 'any' or 'dropped' (only samples whose "
                         "skips are dropped)")
    if cfg.colour_swap_on == "dropped" and cfg.colour_swap and not cfg.skip_drop:
        raise ValueError("colour_swap_on='dropped' needs skip_drop > 0 (no sample has its skips dropped)")
    if not 0.0 <= cfg.content_swap <= 1.0:
        raise ValueError(f"content_swap={cfg.content_swap!r}: a probability in [0, 1] (0 switches it off)")
    if not 0 <= cfg.content_swap_tmin <= cfg.content_swap_tmax <= 999:
        raise ValueError(f"content_swap_tmin={cfg.content_swap_tmin!r}, content_swap_tmax={cfg.content_swap_tmax!r}: "
                         "need 0 <= tmin <= tmax <= 999")
    if not 0.0 <= cfg.content_swap_same_pose <= 1.0:
        raise ValueError(f"content_swap_same_pose={cfg.content_swap_same_pose!r}: a share in [0, 1]")
    if cfg.content_swap and cfg.colour_swap + cfg.content_swap > 1.0:
        raise ValueError(f"colour_swap + content_swap = {cfg.colour_swap + cfg.content_swap:g} > 1: a sample gets "
                         "at most one swap; lower one of them")
    if cfg.schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule={cfg.schedule!r}: choose 'constant' or 'cosine' (to lr/10 at the last step)")


@dataclasses.dataclass
class Batch:
    """One step's draw: which faces, which t, which noise, and the per-sample coin flips of the regularisers."""
    idx: torch.Tensor
    t: torch.Tensor
    eps: torch.Tensor
    u_drop: torch.Tensor | None
    u_swap: torch.Tensor | None
    u_content: torch.Tensor | None = None


def draw_batch(step: int, seed: int, n_data: int, batch_size: int, shape, drop: bool, swap: bool,
               device="cpu", content: bool = False) -> Batch:
    """The batch of ``step``, from its own random stream (so a resumed run draws what it would have drawn)."""
    g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(n_data, (batch_size,), generator=g, device=device)
    t = torch.randint(0, 1000, (batch_size,), generator=g, device=device)
    eps = torch.randn((batch_size, *shape), generator=g, device=device)
    u_drop = torch.rand(batch_size, generator=g, device=device) if drop else None
    u_swap = torch.rand(batch_size, generator=g, device=device) if swap else None
    u_content = torch.rand(batch_size, generator=g, device=device) if content else None   # drawn last: the
    return Batch(idx, t, eps, u_drop, u_swap, u_content)           # streams of runs without it are unchanged


class Trainer:
    """One model's training state and its step: the DDPM ε-loss with the configured regularisers, AdamW,
    gradient clipping and the EMA. :func:`train` drives one; ``training/gpu_train.py`` drives several in
    lock-step on the same batches (equal compute, common random numbers)."""

    def __init__(self, cfg: TrainConfig, data: torch.Tensor, twins: torch.Tensor | None = None, device="cpu",
                 content_twins: torch.Tensor | None = None):
        self.cfg, self.data, self.device = cfg, data, torch.device(device)
        self.model = build_unet(cfg.layout, cfg.image_size)
        if cfg.init:
            from diffstyle_lab.models import load_unet_folder
            self.model.load_state_dict(load_unet_folder(Path(cfg.init) / "unet").state_dict(), strict=True)
        self.model.to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.acp = build_scheduler().alphas_cumprod.to(self.device)
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0, **fused)
        self.drop = SkipDropout(self.model, cfg.skip_drop_levels, cfg.skip_drop_mode) if cfg.skip_drop > 0 else None
        self.swap = ColourSwap(self.model, twins) if cfg.colour_swap > 0 else None
        self.content = ContentSwap(self.model, content_twins) if cfg.content_swap > 0 else None

    def lr(self, step: int) -> float:
        cfg = self.cfg
        lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
        if cfg.schedule == "cosine" and step >= cfg.warmup:
            done = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
            lr = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, done))))
        return lr

    def step(self, step: int, b: Batch, amp: bool = False) -> float:
        """One optimiser step on batch ``b``; returns the loss."""
        cfg = self.cfg
        x0 = self.data[b.idx]
        a = self.acp[b.t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * b.eps
        lr = self.lr(step)
        for pg in self.opt.param_groups:
            pg["lr"] = lr
        keep = None
        if self.drop is not None:
            keep = (b.u_drop >= cfg.skip_drop) | (b.t < cfg.skip_drop_tmin)
            self.drop.mask = keep.float()
        target = b.eps
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            swapped = torch.zeros_like(b.t, dtype=torch.bool)
            if self.content is not None:       # one coin per sample: content swap below p_content, colour swap
                swapped = ((b.u_content < cfg.content_swap) & (b.t >= cfg.content_swap_tmin)   # on the rest
                           & (b.t <= cfg.content_swap_tmax))
                self.content.prepare(b.idx, b.t, b.eps, a, swapped, arm=False)
                target = self.content.target(xt, b.idx, a, b.eps, swapped)
            if self.swap is not None:
                chosen = (b.u_swap < cfg.colour_swap) & ~swapped
                if cfg.colour_swap_on == "dropped":    # h from the twin only where the coarse skips are gone:
                    chosen = chosen & ~keep              # layout must come from h, colour never can
                self.swap.prepare(b.idx, b.t, b.eps, a, chosen, arm=False)
            for reg in (self.content, self.swap):  # armed only once both twins' h are computed: each prepare runs
                if reg is not None:                # a down path through the mid block, which would consume an armed h
                    reg.arm()
            pred = self.model(xt, b.t).sample
        per = F.mse_loss(pred.float(), target, reduction="none").mean(dim=(1, 2, 3))
        loss = (loss_weights(cfg.loss, a / (1 - a)).view(-1) * per).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        d = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - d)
        return loss.detach()

    def close(self):
        for reg in (self.drop, self.swap, self.content):
            if reg is not None:
                reg.remove()


def train(cfg: TrainConfig):
    """Train (or resume) and return the EMA U-Net. Writes into ``cfg.out``."""
    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = _training_data(cfg)
    torch.manual_seed(cfg.seed)
    tr = Trainer(cfg, data, _colour_twins(cfg) if cfg.colour_swap > 0 else None,
                 content_twins=_content_twins(cfg) if cfg.content_swap > 0 else None)
    ck = out / "checkpoint"
    step = _load_state(ck, tr.model, tr.ema, tr.opt) if (ck / "state.json").exists() else 0
    log = out / "loss.csv"
    new_log = not log.exists() or step == 0
    if not new_log:  # drop rows written after the checkpoint we resume from
        lines = log.read_text().splitlines()
        keep = [lines[0]] + [r for r in lines[1:] if r and int(r.split(",")[0]) <= step]
        write_text(log, "\n".join(keep) + "\n")
    fh = open(log, "w" if new_log else "a", newline="")
    w = csv.writer(fh)
    if new_log:
        w.writerow(["step", "loss", "lr", "seconds"])
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress, desc="train")
    t0 = time.time()
    while step < cfg.steps:
        b = draw_batch(step, cfg.seed, len(data), cfg.batch_size, data.shape[1:], tr.drop is not None,
                       tr.swap is not None, content=tr.content is not None)
        loss = float(tr.step(step, b))
        step += 1
        w.writerow([step, f"{loss:.5f}", f"{tr.lr(step - 1):.2e}", f"{time.time() - t0:.1f}"])
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            fh.flush()
            _save_state(ck, tr.model, tr.ema, tr.opt, step, cfg)
            export(tr.ema, out / "model")
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:
            export(tr.ema, out / "snapshots" / f"step_{step:06d}")
    bar.close()
    fh.close()
    tr.close()
    return tr.ema


def parser() -> argparse.ArgumentParser:
    """The training command's options: one per :class:`TrainConfig` field it sets (same names)."""
    t = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--layout", default="h4", choices=["h4", "h8"])
    t.add_argument("--n-train", type=int, default=12000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=250)
    t.add_argument("--upright", action="store_true", help="faces without poses (the first shipped model's data)")
    t.add_argument("--init", default="", help="fine-tune: start from this diffusers model folder's U-Net")
    t.add_argument("--loss", default="eps", choices=["eps", "min_snr5"], help="ε-MSE weighting")
    t.add_argument("--snapshot-every", type=int, default=0, help="export the EMA weights every N steps (0: never)")
    t.add_argument("--skip-drop", type=float, default=0.0,
                   help="training only: drop the coarsest up blocks' skips with this probability per sample")
    t.add_argument("--skip-drop-levels", type=int, default=2, help="how many coarsest up blocks --skip-drop affects")
    t.add_argument("--skip-drop-tmin", type=int, default=100, help="--skip-drop only at noise levels t >= this")
    t.add_argument("--skip-drop-mode", default="zero", choices=["zero", "mean"],
                   help="a dropped skip becomes 0, or its spatial mean per channel (keeps colour statistics)")
    t.add_argument("--colour-swap", type=float, default=0.0,
                   help="share of samples whose h comes from the same face in other colours (training only)")
    t.add_argument("--colour-swap-on", default="any", choices=["any", "dropped"],
                   help="draw the colour swap for any sample, or only for samples whose skips --skip-drop dropped")
    t.add_argument("--content-swap", type=float, default=0.0,
                   help="share of samples whose h and target come from another face in the same colours (training "
                        "only; the skips stay the sample's own)")
    t.add_argument("--content-swap-tmin", type=int, default=200, help="--content-swap only at noise levels t >= this")
    t.add_argument("--content-swap-tmax", type=int, default=999, help="--content-swap only at noise levels t <= this")
    t.add_argument("--content-swap-same-pose", type=float, default=0.0,
                   help="share of --content-swap's other faces that keep the sample's pose (identity-only swaps)")
    t.add_argument("--schedule", default="constant", choices=["constant", "cosine"],
                   help="learning rate after the warm-up: constant, or cosine down to lr/10 at the last step")
    t.add_argument("--quiet", action="store_true")
    return t


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    same_name = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(a, f.name)}
    train(TrainConfig(**same_name, progress=not a.quiet, pose=not a.upright))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
