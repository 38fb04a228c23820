"""A small classifier of the face factors (content and style ground truth of :mod:`avatars`).

Used to judge results without downloaded networks: does an injected face keep the content
image's hair/eyes/mouth (content) and take the style image's background/skin/hair colour (style)?
Its penultimate features also give a Fréchet distance for sample quality (a small, domain-specific
stand-in for FID). Weights ship in ``diffstyle_lab/data/models/factor_classifier`` (safetensors + JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import avatars
from .avatars import to_tensor  # noqa: F401  (factors.to_tensor is public)

HEADS = ("family", "hair", "eyes", "mouth", "background", "skin", "hair_colour")
CONTENT_HEADS = ("family", "hair", "eyes", "mouth")
STYLE_HEADS = ("background", "skin", "hair_colour")


def label_space() -> dict[str, list[str]]:
    """Class names of each head; family-specific variants are prefixed with the family."""
    sp = {"family": list(avatars.FAMILIES), "background": list(avatars.BACKGROUNDS)}
    for key in ("hair", "eyes", "mouth"):
        sp[key] = [f"{f}:{v}" for f in avatars.FAMILIES for v in avatars.variants(f)[key]]
    sp["skin"] = [f"{f}:{c}" for f in avatars.FAMILIES for c in avatars.SKINS[f]]
    sp["hair_colour"] = [f"{f}:{c}" for f in avatars.FAMILIES for c in avatars.HAIR_COLOURS[f]]
    return sp


def labels_of(factors, space) -> dict[str, torch.Tensor]:
    """Class indices per head (in ``space``) of a list of :class:`avatars` factors."""
    def name(f, head):
        return getattr(f, head) if head in ("family", "background") else f"{f.family}:{getattr(f, head)}"
    return {head: torch.tensor([space[head].index(name(f, head)) for f in factors]) for head in HEADS}


class FactorNet(nn.Module):
    def __init__(self, space: dict[str, list[str]], width: int = 16, feat: int = 128):
        super().__init__()
        self.space = space
        self.width = w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GELU(), nn.Conv2d(w, w, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.GELU(), nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GELU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(4 * w * 16, feat), nn.GELU())
        self.heads = nn.ModuleDict({h: nn.Linear(feat, len(space[h])) for h in HEADS})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B×128) of images in [−1, 1] at 32×32 (other sizes are resized)."""
        if x.shape[-1] != 32:
            x = F.interpolate(x, size=(32, 32), mode="area")
        return self.body(x)

    def forward(self, x):
        f = self.features(x)
        return {h: head(f) for h, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 256) -> dict[str, list[str]]:
        self.eval()
        out = {h: [] for h in HEADS}
        for i in range(0, len(x), batch):
            logits = self(x[i:i + batch])
            for h in HEADS:
                out[h] += [self.space[h][k] for k in logits[h].argmax(1).tolist()]
        return out


def default_path() -> Path:
    from ..models import data_path
    return data_path("models", "factor_classifier")


def save(net: FactorNet, path) -> None:
    from ..fileio import write_json, write_safetensors
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_safetensors(path / "model.safetensors", {k: v.contiguous() for k, v in net.state_dict().items()})
    write_json(path / "config.json", {"space": net.space, "width": net.width}, indent=0)


def load(path=None) -> FactorNet:
    from safetensors.torch import load_file
    path = Path(path) if path else default_path()
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"no factor classifier at {path}: train one with "
                                "`python -m diffstyle_lab.faces.factors --out PATH` (needs the [data] extra)")
    from ..fileio import read_json
    cfg = read_json(path / "config.json", "; it should be the factor classifier config saved with its weights")
    net = FactorNet(cfg["space"], width=cfg.get("width", 32))
    net.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
    return net.eval().requires_grad_(False)


def train_classifier(n_train: int = 6000, epochs: int = 5, seed: int = 0,
                     progress: bool = True) -> tuple[FactorNet, dict]:
    """Train on fresh renders (seed ``seed``); report per-head accuracy on 1,000 held-out renders."""
    from tqdm.auto import tqdm
    torch.manual_seed(seed)
    space = label_space()
    x, fs = avatars.make_faces(n_train, seed=10_000 + seed)
    xt, ft = avatars.make_faces(1000, seed=20_000 + seed)
    X, Y = to_tensor(x), labels_of(fs, space)
    Xt, Yt = to_tensor(xt), labels_of(ft, space)
    net = FactorNet(space)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (n_train // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), disable=not progress, desc="factor classifier"):
        perm = torch.randperm(n_train, generator=g)
        for i in range(0, n_train - 63, 64):
            idx = perm[i:i + 64]
            xb = X[idx]
            # light augmentation: small shifts, so generated faces a pixel off still classify
            dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
            xb = torch.roll(xb, (dy, dx), (2, 3))
            out = net(xb)
            loss = sum(F.cross_entropy(out[h], Y[h][idx]) for h in HEADS)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        out = net(Xt)
    acc = {h: float((out[h].argmax(1) == Yt[h]).float().mean()) for h in HEADS}
    return net.requires_grad_(False), acc


def frechet_distance(fa: torch.Tensor, fb: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N×D each):
    ‖μa−μb‖² + tr(Ca + Cb − 2(Ca^½ Cb Ca^½)^½), with symmetric eigendecompositions (no SciPy)."""
    a, b = fa.double().numpy(), fb.double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    s = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(s @ cb @ s), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_covmean)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="train the factor classifier")
    ap.add_argument("--out", default=str(default_path()))
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=5)
    a = ap.parse_args()
    net, acc = train_classifier(a.n_train, a.epochs)
    save(net, a.out)
    from ..fileio import write_json
    write_json(Path(a.out) / "accuracy.json", acc)
    print(json.dumps(acc, indent=1))
