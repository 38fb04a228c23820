"""Behaviour check for a refactor: six injection cases on the sample faces, saved as .npy, to compare two trees.

    git worktree add /tmp/base BASE_COMMIT
    PYTHONPATH=/tmp/base python scripts/same_images.py /tmp/out_base [MODEL_DIR]
    PYTHONPATH=.         python scripts/same_images.py /tmp/out_head [MODEL_DIR]
    python scripts/same_images.py --compare /tmp/out_base /tmp/out_head      # max |Δ| per case

Cases (4 sample pairs, 12/12 steps, the model's stored defaults otherwise): plain, a square mask, t_boost 0,
t_edit 400 with t_boost 400, and a cache miss then a hit. ``MODEL_DIR`` (default: the default model) lets both
trees load the same weights when the shipped model changed between them.
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

CASES = {"plain": {}, "t_boost0": {"t_boost": 0}, "t_edit400_boost400": {"t_edit": 400, "t_boost": 400}}


def run(out: Path, model_dir: str | None) -> None:
    import diffstyle_lab as dl
    from diffstyle_lab.images import list_images, load_image
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    print("package:", dl.__file__)
    m = dl.load_model(model_dir) if model_dir else dl.load_default_model()
    root = Path(dl.__file__).parent / "data" / "samples"
    c, s = (torch.stack([load_image(p, m.sample_size, "crop")[0] for p in list_images(root / k)[:4]])
            for k in ("content", "style"))
    mask = torch.zeros(m.sample_size, m.sample_size)
    mask[m.sample_size // 4: 3 * m.sample_size // 4, m.sample_size // 4: 3 * m.sample_size // 4] = 1
    runs = {name: dict(kw) for name, kw in CASES.items()} | {"mask": {"mask": mask}}

    def save(name, images):
        np.save(out / f"{name}.npy", images.float().numpy())   # plain numpy: the script must run on old trees too
    for name, kw in runs.items():
        save(name, dl.inject(m, c, s, dl.InjectionConfig.for_model(m, steps=12, **kw), inversion_steps=12,
                             progress=False).images)
    with tempfile.TemporaryDirectory() as d:
        cache = dl.InversionCache(d)
        for name in ("cache_miss", "cache_hit"):
            save(name, dl.inject(m, c, s, dl.InjectionConfig.for_model(m, steps=12), inversion_steps=12,
                                 progress=False, cache=cache).images)
        print(f"cache: {cache.hits} hits, {cache.misses} misses")


def compare(a: Path, b: Path) -> int:
    worst = 0.0
    for f in sorted(a.glob("*.npy")):
        d = float(np.abs(np.load(f) - np.load(b / f.name)).max())
        worst = max(worst, d)
        print(f"{f.stem:22s} max |Δ| = {d}")
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compare"]:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    run(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
