"""Train several candidate default models in lock-step on one GPU: equal compute, the same batches.

    python -m training.gpu_train --out $OUT --budget 420          # on a lent H100/H200 (training/gpu_train.sh)
    python -m training.gpu_train --out /tmp/g --device cpu --tiny  # the CPU path (tests/test_gpu_train.py)

1. Renders the training faces on every core (posed and upright faces, each with its recoloured twin for
   the colour swap), deterministic in ``--data-seed``: nothing has to be carried but the code.
2. Builds one :class:`training.train.Trainer` per candidate (``CANDIDATES``: the control and the
   skip-dropout / colour-swap variants) and runs them in lock-step: step k of every candidate sees the
   same faces, t, noise and coin flips (``training.train.draw_batch``), so differences between them are the
   recipes' own. bf16 autocast on CUDA.
3. Times the first steps, then fixes the step count that fits ``--budget`` seconds of training (the cosine
   learning-rate schedule needs it), re-fits it from steps 100-200, and trains to it (``--max-steps`` caps it).
4. Writes into ``--out`` (flat, as the device tool brings back): ``<name>.safetensors`` per candidate (the
   EMA U-Net, fp16, re-exported every ``--export-every`` seconds so a cut-off run still returns weights;
   with ``--snapshot-every N`` also ``<name>.stepNNNNNN.safetensors`` every N steps, 6 MB each — the device
   tool brings back at most 8 files of ≤ 16 MiB: one candidate with 5 snapshots fits beside the final weights,
   the record and the log, e.g. ``--only mean_cs25 --max-steps 2000 --snapshot-every 400``),
   ``gpu_train.json`` (configs, steps, images seen, timings, loss curve) and the log on stdout.
   ``python -m training.gpu_import OUT runs/gpu`` turns them into diffusers model folders.

Measured on a lent H200 (2026-12-04, torch 2.11, bf16): rendering 64,000 faces + twins on 16 cores 33 s;
the six candidates at batch 256 took 446 ms per lock-step (74 ms per model step, ≈ 3,400 images/s in all),
so a 212-s budget gave each 451 steps = 115k images (≈ the CPU-hour v2 fine-tune). The steps are
launch-bound, not compute-bound (a 3 M-parameter U-Net at 32 px): a larger ``--batch-size`` or fewer
``--only`` candidates buys more images per second. A first try with cudnn.benchmark on re-tuned every
step (the colour swap's sub-batch changes size) and ran at 4 s per lock-step.
Second run (same day, four candidates ``--only v3_more v3ctl_more h8_cs25 h8_ctl --batch-size 1024``): the early
probe said 707 ms per lock-step, so a 360-s budget stopped after 173 s (488 steps); steady state is 290 ms per
lock-step, 73 ms per model step at 4x the batch (still launch-bound), hence the re-fit. With ``--max-steps 1100``:
1,100 steps = 1.13 M images per candidate in 339 s (10x the first run, ≈ 10 CPU-hours of the v2 fine-tune).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
from training import train as T
from diffstyle_lab.fileio import write_json, write_safetensors

V1 = str(ROOT / "data" / "models" / "faces32_v1")
V3 = str(ROOT / "data" / "models" / "faces32_v3")                    # v3 (= mean_cs25 of the first run), archived
V4 = str(ROOT / "diffstyle_lab" / "data" / "models" / "faces32")      # the shipped default model (v4)
V3_CTL = str(ROOT / "data" / "models" / "faces32_v3_control")        # its equal-compute control (= ctl)
SKIP = dict(skip_drop=0.8, skip_drop_levels=3)
SKIP8 = dict(skip_drop=0.8, skip_drop_levels=2)    # "h8": the 8x8 and 16x16 up blocks; as in SKIP, only 32x32 keeps its skips
# name -> TrainConfig fields; every candidate shares the data, batches, schedule and step count
CANDIDATES = {
    "ctl": dict(init=V1),                                                    # control: plain ε fine-tune
    "zero": dict(init=V1, **SKIP, skip_drop_mode="zero"),                    # the v2 recipe
    "mean": dict(init=V1, **SKIP, skip_drop_mode="mean"),                    # dropped skips keep their means
    "mean_cs25": dict(init=V1, **SKIP, skip_drop_mode="mean", colour_swap=0.25),   # + h from a recoloured twin
    "mean_cs50": dict(init=V1, **SKIP, skip_drop_mode="mean", colour_swap=0.5),
    "mean_scratch": dict(init="", **SKIP, skip_drop_mode="mean"),            # the same from random weights
    # second run (2026-12-04, later): more compute for v3's recipe, and h at 8x8 instead of 4x4
    "v3_more": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25),      # v3, trained on
    "v3ctl_more": dict(init=V3_CTL),                                                 # its control, trained on
    "h8_cs25": dict(init="", layout="h8", **SKIP8, skip_drop_mode="mean", colour_swap=0.25),  # from scratch
    "h8_ctl": dict(init="", layout="h8"),                                            # its control
    # the coins coupled: h from the recoloured twin exactly where the coarse skips are dropped (v3's independent
    # coins leave 60 % of samples rebuilding colour from h). CPU pilot at 64k images: no less colour in h, less
    # transfer (v3 card); kept for a run at scale
    "mean_csdrop": dict(init=V1, **SKIP, skip_drop_mode="mean", colour_swap=1.0, colour_swap_on="dropped"),
    # v4 screen (issue 25): v3's recipe plus the content swap (h and target from another face in the same colours)
    "v3_cont": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25),                 # control
    "v3_xs10": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.10),
    "v3_xs15": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.15),
    "v3_xs25": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.25),
    "v3_xs25_sp50": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.25,
                         content_swap_same_pose=0.5),
    "v3_xs25_t400": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.25,
                         content_swap_tmin=400),
    # the content swap's t range (third session; seed 0 pairs with the screen's seed-0 v3_xs15, which has t ≥ 200)
    "v3_xs15_t100": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.15,
                         content_swap_tmin=100),
    "v3_xs15_t400": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.15,
                         content_swap_tmin=400),
    # more colour pressure (colour swap 0.5) and identity-only twins (half keep the pose) at v4's content swap
    "v3_xs15_cs50": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.5, content_swap=0.15),
    "v3_xs15_sp50": dict(init=V3, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.15,
                         content_swap_same_pose=0.5),
    # after v4 shipped: its recipe continued from it, for a GPU run at scale (samples from noise need far more posed
    # faces than the CPU gave; v4 card, Samples from noise). E.g. GPU_TRAIN_ARGS="--only v4_xs15 --batch-size 1024
    # --max-steps 2400 --snapshot-every 600"
    "v4_xs15": dict(init=V4, **SKIP, skip_drop_mode="mean", colour_swap=0.25, content_swap=0.15),
}


def _render_chunk(args):
    seed, chunk, n, size, pose, content = args
    from diffstyle_lab.faces import avatars as A
    rng = np.random.default_rng([seed, int(pose), chunk])
    fs = [A.random_factors(rng, pose=pose) for _ in range(n)]
    twins = [A.same_identity_other_colours(f, rng) for f in fs]
    out = [np.stack([A.render(f, size) for f in fs]), np.stack([A.render(f, size) for f in twins])]
    if content:        # content twins from their own stream: the faces and colour twins above do not change
        rng2 = np.random.default_rng([seed, int(pose), chunk, 1])
        others = [A.other_identity_same_colours(f, rng2, pose=pose) for f in fs]
        same_pose = [dataclasses.replace(o, **{k: getattr(f, k) for k in A.POSE_KEYS}) for f, o in zip(fs, others)]
        out += [np.stack([A.render(f, size) for f in others]), np.stack([A.render(f, size) for f in same_pose])]
    return out


def render_data(n_posed: int, n_upright: int, seed: int, size: int, workers: int, chunk: int = 500,
                content: bool = False):
    """Faces (uint8 N×H×W×3) and their recoloured twins, rendered in parallel, deterministic in ``seed``; with
    ``content`` also each face's content twins (another identity in the same colours, in another pose and in
    the face's own pose) for the content swap."""
    jobs = [(seed, i, min(chunk, n - i * chunk), size, pose, content)
            for n, pose in ((n_posed, True), (n_upright, False)) for i in range((n + chunk - 1) // chunk)]
    with get_context("fork").Pool(workers) as pool:
        parts = pool.map(_render_chunk, jobs)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(parts[0])))


def content_twins(other_pose: torch.Tensor, same_pose: torch.Tensor, share: float, seed: int) -> torch.Tensor:
    """A candidate's content twins: per face, the same-pose twin with probability ``share`` (a fixed coin per
    face, deterministic in ``seed``), else the other-pose one."""
    g = torch.Generator().manual_seed(seed)
    keep = (torch.rand(len(other_pose), generator=g) < share).to(other_pose.device).view(-1, 1, 1, 1)
    return torch.where(keep, same_pose, other_pose)


def save_fp16(unet, path: Path) -> None:
    sd = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in unet.state_dict().items()}
    write_safetensors(path, sd)


def make_trainer(name: str, a, out: Path, dev, data, tw, cont) -> "T.Trainer":
    """Candidate ``name``'s trainer on the shared data (its colour and content twins only if its recipe uses them)."""
    cfg = T.TrainConfig(out=str(out / name), steps=a.max_steps, batch_size=a.batch_size, lr=a.lr,
                        seed=a.seed, schedule="cosine", progress=False, **CANDIDATES[name])
    T.check_config(cfg)
    torch.manual_seed(a.seed)
    ctw = content_twins(*cont, cfg.content_swap_same_pose, a.data_seed) if cfg.content_swap > 0 else None
    return T.Trainer(cfg, data, tw if cfg.colour_swap > 0 else None, device=dev, content_twins=ctw)


def record(a, trainers: dict, dev, amp: bool, step: int, n_steps: int, curve: list, t_train: float,
           t_start: float) -> dict:
    """What ``gpu_train.json`` says of the run so far: steps, images, time, device, data, configs, loss curve."""
    return {"steps": step, "planned_steps": n_steps, "batch_size": a.batch_size,
            "images_per_model": step * a.batch_size, "train_seconds": round(time.time() - t_train, 1),
            "total_seconds": round(time.time() - t_start, 1), "device": str(dev),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "", "torch": torch.__version__,
            "amp_bf16": amp, "data": {"posed": a.n_posed, "upright": a.n_upright, "seed": a.data_seed},
            "unet_configs": {n: dict(tr.ema.config) for n, tr in trainers.items()},
            "candidates": {n: {k: v for k, v in dataclasses.asdict(tr.cfg).items() if k != "out"}
                           for n, tr in trainers.items()},
            "loss_curve": curve}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget", type=float, default=420, help="seconds of training (after rendering and set-up)")
    p.add_argument("--max-steps", type=int, default=40_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-posed", type=int, default=48_000)
    p.add_argument("--n-upright", type=int, default=16_000)
    p.add_argument("--data-seed", type=int, default=11)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--only", nargs="*", default=None, help="candidate names (default: all)")
    p.add_argument("--export-every", type=float, default=90, help="seconds between weight exports")
    p.add_argument("--snapshot-every", type=int, default=0,
                   help="also keep each candidate's EMA weights every N steps as <name>.stepNNNNNN.safetensors "
                        "(0: never): where along a run the split is best")
    p.add_argument("--probe-steps", type=int, default=30, help="steps timed before the step count is fixed")
    p.add_argument("--amp", action="store_true", help="bf16 autocast also off CUDA (on CUDA it is always on)")
    p.add_argument("--tiny", action="store_true", help="the CPU check: 64 faces, batch 4, a few steps")
    return p


def main(argv=None):
    p = parser()
    a = p.parse_args(argv)
    if a.tiny:
        a.n_posed, a.n_upright, a.batch_size, a.budget, a.max_steps, a.probe_steps = 48, 16, 4, 8, 40, 8
    names = a.only or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"--only: unknown candidate(s) {unknown}; choose from {list(CANDIDATES)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    def say(msg):
        print(f"[{time.time() - t_start:6.1f} s] {msg}", flush=True)

    need_content = any(CANDIDATES[n].get("content_swap", 0) > 0 for n in names)
    faces, twins, *cont = render_data(a.n_posed, a.n_upright, a.data_seed, 32, a.workers,   # before CUDA is touched
                                      content=need_content)
    say(f"rendered {len(faces)} faces and their twins{' and content twins' if cont else ''} on {a.workers} workers")
    dev = torch.device(a.device)
    amp = dev.type == "cuda" or a.amp
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False    # the colour swap runs a new batch size every step: no re-tuning
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    data, tw = T.to_tensor(faces).to(dev), T.to_tensor(twins).to(dev)
    cont = [T.to_tensor(c).to(dev) for c in cont]
    trainers = {name: make_trainer(name, a, out, dev, data, tw, cont) for name in names}
    say(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}), torch {torch.__version__}, "
        f"candidates {names}, batch {a.batch_size}")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    losses = {n: [] for n in names}
    curve, step, n_steps, t_train, last_export = [], 0, a.max_steps, time.time(), time.time()
    # the step count that fits the budget is fixed from the time of steps 5..probe, then re-fitted from steps
    # 100..200 (still in the warm-up, before the cosine decay matters): the first steps are slow while kernels
    # for new sub-batch sizes are picked (second run: 580-707 ms per lock-step probed, 290 ms steady)
    fits = [(min(5, a.probe_steps - 1), a.probe_steps), (100, 200)]
    t_mark = {}
    while step < n_steps:
        b = T.draw_batch(step, a.seed, len(data), a.batch_size, data.shape[1:], True, True, device=dev,
                         content=need_content)
        for name, tr in trainers.items():
            losses[name].append(tr.step(step, b, amp=amp))
        step += 1
        for first, last in fits:
            if step == first:
                sync()
                t_mark[first] = time.time()
            if step == last and first in t_mark and step < n_steps:
                sync()
                per_step = (time.time() - t_mark[first]) / (last - first)
                left = a.budget - (time.time() - t_train)
                n_steps = int(min(a.max_steps, step + max(0, left) / per_step * 0.97))
                for tr in trainers.values():
                    tr.cfg.steps = n_steps
                say(f"{per_step * 1000:.1f} ms per lock-step ({len(names)} models, steps {first}-{last}): "
                    f"training {n_steps} steps = {n_steps * a.batch_size:,} images per model")
        if step % 250 == 0 or step == n_steps:
            row = {"step": step, "seconds": round(time.time() - t_train, 1),
                   **{n: round(float(torch.stack(v).mean()), 5) for n, v in losses.items() if v}}
            losses = {n: [] for n in names}
            curve.append(row)
            say(" ".join(f"{k} {v}" for k, v in row.items()))
        if a.snapshot_every and step % a.snapshot_every == 0 and step < n_steps:
            for name, tr in trainers.items():
                save_fp16(tr.ema, out / f"{name}.step{step:06d}.safetensors")
        if time.time() - last_export > a.export_every or step == n_steps:
            for name, tr in trainers.items():
                save_fp16(tr.ema, out / f"{name}.safetensors")
            last_export = time.time()
            write_json(out / "gpu_train.json", record(a, trainers, dev, amp, step, n_steps, curve, t_train, t_start),
                       default=str)
    files = sorted(f.name for f in out.iterdir() if f.is_file())
    if dev.type == "cuda" and len(files) + 1 > 8:          # + the log that gpu_train.sh writes beside them
        say(f"warning: {len(files) + 1} files in {out}; the device tool brings back at most 8 — fewer --only "
            "candidates or a larger --snapshot-every")
    say(f"done: {step} steps per model, weights and gpu_train.json in {out}")


if __name__ == "__main__":
    main()
