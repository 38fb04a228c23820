"""``diffstyle-lab`` — the command line: inject, train, notebooks, demo."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path


def _device(name: str) -> str:
    import torch
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible; use --device cpu or auto")
    return name


def _load(model: str | None, device: str):
    from .models import load_default_model, load_model
    return load_default_model(device=device) if not model else load_model(model, device=device)


def _atomic_save(img, path: Path):
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    os.replace(tmp, path)


def _pair_seed(seed: int, content: Path, style: Path) -> int:
    return int(hashlib.sha256(f"{seed}|{content.name}|{style.name}".encode()).hexdigest()[:12], 16)


def cmd_inject(a) -> int:
    import torch
    from . import InjectionConfig, InversionCache, inject
    from .images import grid, list_images, load_image

    device = _device(a.device)
    m = _load(a.model, device)
    size = m.sample_size
    contents, styles = list_images(a.content), list_images(a.style)
    # read every input first: a broken file stops the batch before anything is written
    cx = {p: load_image(p, size, a.fit) for p in contents}
    sx = {p: load_image(p, size, a.fit) for p in styles}
    mask = None
    if a.mask:
        from PIL import Image
        with Image.open(a.mask) as im:
            mask = torch.from_numpy(__import__("numpy").asarray(im.convert("L"), dtype="float32") / 255.0)
    cfg = InjectionConfig(gamma=a.gamma, t_edit=a.t_edit, t_boost=a.t_boost, omega=a.omega, calibrate=a.calibrate,
                          method=a.method, steps=a.steps, seed=a.seed, mask=mask).validate(m.T)
    out = Path(a.out)
    man_path = out / "manifest.json"
    # what the outputs depend on: a folder made with other parameters is never silently "resumed"
    params = {"model": m.weights_hash, "gamma": a.gamma, "t_edit": a.t_edit, "t_boost": a.t_boost,
              "omega": a.omega, "calibrate": a.calibrate, "method": a.method, "steps": a.steps,
              "inversion_steps": a.inversion_steps, "seed": a.seed, "fit": a.fit,
              "mask": None if mask is None else hashlib.sha256(mask.numpy().tobytes()).hexdigest()}
    old = json.loads(man_path.read_text()) if man_path.exists() else None
    if old is not None and old.get("params") != params:
        changed = sorted(k for k in params if (old.get("params") or {}).get(k) != params[k])
        raise ValueError(f"{out} holds results made with other parameters (differs in: {', '.join(changed)}); "
                         f"choose another --out, or delete {man_path} to recompute everything")
    done = old["pairs"] if old is not None else {}
    out.mkdir(parents=True, exist_ok=True)
    cache = InversionCache(a.cache) if a.cache != "off" else None
    todo = [(c, s) for c in contents for s in styles if f"{c.stem}__{s.stem}.png" not in done
            or not (out / f"{c.stem}__{s.stem}.png").exists()]
    from tqdm.auto import tqdm
    common = None
    for k in tqdm(range(0, len(todo), a.batch), desc="pairs", disable=a.quiet):
        chunk = todo[k:k + a.batch]
        seeds = [_pair_seed(a.seed, c, s) for c, s in chunk]   # a pair's noise never depends on its batch
        r = inject(m, torch.cat([cx[c] for c, _ in chunk]), torch.cat([sx[s] for _, s in chunk]), cfg,
                   inversion_steps=a.inversion_steps, cache=cache, progress=False, sample_seeds=seeds)
        for (c, s), img, sd in zip(chunk, r.to_pil(), seeds):
            name = f"{c.stem}__{s.stem}.png"
            _atomic_save(img, out / name)
            done[name] = {"content": str(c), "style": str(s), "seed": sd}
        common = {k2: v for k2, v in r.manifest.items() if k2 not in ("pair_index", "seconds")}
        man = {"pairs": done, "params": params, "run": common}
        tmp = man_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(man, indent=1))
        os.replace(tmp, man_path)
    # grid: rows = content, columns = style, with inputs on the edges
    import torch as _t
    blank = _t.ones(1, 3, size, size)
    rows = [_t.cat([blank] + [sx[s] for s in styles])]
    from .images import load_image as _li
    for c in contents:
        rows.append(_t.cat([cx[c]] + [_li(out / f"{c.stem}__{s.stem}.png", size) for s in styles]))
    grid(_t.cat(rows), nrow=len(styles) + 1).save(out / "grid.png")
    if not a.quiet:
        print(f"{len(todo)} new pair(s), {len(contents) * len(styles)} in all -> {out}/ (grid.png, manifest.json)")
    return 0


def cmd_train(a) -> int:
    from .train import TrainConfig, train
    train(TrainConfig(out=a.out, steps=a.steps, batch_size=a.batch_size, lr=a.lr, layout=a.layout,
                      n_train=a.n_train, seed=a.seed, threads=a.threads, progress=not a.quiet,
                      checkpoint_every=a.checkpoint_every))
    return 0


def cmd_demo(a) -> int:
    from .models import data_dir
    samples = data_dir() / "samples"
    ns = argparse.Namespace(content=str(samples / "content"), style=str(samples / "style"), mask=None, model=a.model,
                            gamma=0.5, t_edit=400, t_boost=0, omega=0.3, calibrate=False, method="normalised_slerp",
                            steps=50, inversion_steps=50, seed=0, device=a.device, out=a.out, fit="crop",
                            cache="off", batch=16, quiet=a.quiet)
    return cmd_inject(ns)


def _run_notebooks(rest) -> int:
    from .run_notebooks import main as run
    return run(rest) or 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["notebooks"]:          # everything after it belongs to the papermill runner
        return _run_notebooks(argv[1:])
    p = argparse.ArgumentParser(prog="diffstyle-lab", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    q = sub.add_parser("inject", help="content injection for files or folders (all content × style pairs)")
    q.add_argument("--content", required=True, help="image file or folder of images (content)")
    q.add_argument("--style", required=True, help="image file or folder of images (style)")
    q.add_argument("--mask", help="grey-scale mask image (white = inject), any size")
    q.add_argument("--model", help="hub id or local diffusers folder (default: the embedded face model)")
    q.add_argument("--gamma", type=float, default=0.3, help="γ, content share of the Slerp (paper: 0.3–0.4)")
    q.add_argument("--t-edit", type=int, default=400, help="inject while t ≥ t_edit")
    q.add_argument("--t-boost", type=int, default=200, help="stochastic quality boosting for t ≤ t_boost (0: off)")
    q.add_argument("--omega", type=float, default=0.3, help="ω, calibration strength (with --calibrate)")
    q.add_argument("--calibrate", action="store_true", help="style calibration (one more U-Net pass per editing step)")
    q.add_argument("--method", default="normalised_slerp",
                   choices=["normalised_slerp", "slerp", "lerp", "replace", "add"])
    q.add_argument("--steps", type=int, default=50, help="generation steps")
    q.add_argument("--inversion-steps", type=int, default=50)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    q.add_argument("--fit", default="crop", choices=["crop", "pad"], help="non-square images: centre-crop or pad")
    q.add_argument("--cache", default=None, help="inversion cache folder, or 'off' (default: ~/.cache/diffstyle_lab)")
    q.add_argument("--batch", type=int, default=8, help="pairs per batch")
    q.add_argument("--quiet", action="store_true")
    q.add_argument("--out", required=True)
    q.set_defaults(fn=cmd_inject)

    t = sub.add_parser("train", help="train a small face diffusion model (needs the [data] extra)")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--layout", default="h4", choices=["h4", "h8"])
    t.add_argument("--n-train", type=int, default=12000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=250)
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=cmd_train)

    d = sub.add_parser("demo", help="style transfer on the shipped sample faces with the default model")
    d.add_argument("--out", default="outputs/demo")
    d.add_argument("--model", default=None)
    d.add_argument("--device", default="auto")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(fn=cmd_demo)

    from .convert import register as _register_convert
    _register_convert(sub)

    sub.add_parser("notebooks", help="execute every notebook with papermill into outputs/ (ipynb + HTML); "
                   "`diffstyle-lab notebooks --help` lists its options")

    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"diffstyle-lab {a.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
