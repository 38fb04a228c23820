"""Evidence for the shipped default model (issue 3 §4), one command:

    python -m training.evaluate_default_model [--model diffstyle_lab/data/models/faces32] [--pairs 100]

Writes <model>/evaluation.json, samples.png, samples_clip_x0.png and samples_stored.png (64 samples each: η 0
without and with clip_x0, and at the folder's generation_defaults), loss.png (if a loss CSV is given) and
injection.png, and prints a Markdown summary for the model card.
"""
import argparse
import time
from pathlib import Path

import torch

import diffstyle_lab as dl
from diffstyle_lab.faces import avatars
from diffstyle_lab.faces import factors
from diffstyle_lab.evaluate import metrics
from diffstyle_lab.fileio import atomic_write, write_json
from diffstyle_lab.images import grid


def faces(n, seed):
    x, fs = avatars.make_faces(n, seed)
    return factors.to_tensor(x), fs


def batched(fn, x, b=64):
    return torch.cat([fn(x[i:i + b]) for i in range(0, len(x), b)])


def save_sheet(x, rows: int, path: Path) -> None:
    """``x`` as a grid of 8 columns, ``rows`` rows of 33-px cells, 3× enlarged, to the PNG ``path``."""
    img = grid(x, nrow=8).resize((8 * 33 * 3, rows * 33 * 3), 0)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def sample_quality(m, clf, n: int, out: Path) -> dict:
    """Fréchet distances (factor-classifier features) of n samples from noise — deterministic DDIM without and with
    clip_x0, and at the folder's generation_defaults — and of clipped noise, against held-out renders; writes the
    three 8×8 sample sheets into ``out``."""
    res = {}
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(n, 3, m.sample_size, m.sample_size, generator=g)
    samples = batched(lambda z: dl.generate(m, z, steps=50, progress=False), x_T)
    held_a, _ = faces(n, seed=40_000)
    held_b, _ = faces(n, seed=50_000)
    fa, fb, fs_ = (clf.features(v) for v in (held_a, held_b, samples))
    res["frechet_samples_vs_heldout"] = factors.frechet_distance(fs_, fa)
    res["frechet_heldout_vs_heldout"] = factors.frechet_distance(fb, fa)
    clipped = batched(lambda z: dl.generate(m, z, steps=50, progress=False, clip_x0=True), x_T)
    res["frechet_clipped_samples_vs_heldout"] = factors.frechet_distance(clf.features(clipped), fa)
    save_sheet(clipped[:64], 8, out / "samples_clip_x0.png")
    stored = dl.sample(m, n, progress=False)      # at the folder's generation_defaults (clip_x0, η, steps)
    res["generation_defaults"] = dl.sampling.noise_settings(m)
    res["frechet_stored_samples_vs_heldout"] = factors.frechet_distance(clf.features(stored.clamp(-1, 1)), fa)
    save_sheet(stored[:64], 8, out / "samples_stored.png")
    res["frechet_noise_vs_heldout"] = factors.frechet_distance(clf.features(torch.randn_like(held_a).clamp(-1, 1)), fa)
    save_sheet(samples[:64], 8, out / "samples.png")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(dl.models.default_model_path()))
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--loss-csv", default=None)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    t_start = time.time()
    out = Path(a.model)
    m = dl.load_model(out)
    clf = factors.load()
    res = {"model": str(out), "weights_sha256": m.weights_hash}

    # 1. reconstruction through DDIM inversion on held-out renders
    x, _ = faces(64, seed=31337)
    for steps in (50, 20):
        inv = dl.ddim_invert(m, x, steps=steps, progress=False)
        rec = dl.generate(m, inv.x_T, steps=steps, progress=False)
        p = metrics.psnr(rec, x)
        res[f"psnr_{steps}"] = {"mean": p.mean().item(), "min": p.min().item(), "max": p.max().item()}

    # 2. sample quality: Fréchet distance on the factor classifier's features
    res.update(sample_quality(m, clf, a.samples, out))

    # 3. the h-space effect on content/style pairs
    c_np, s_np, cf, sf = avatars.content_style_pairs(a.pairs, seed=60_000)
    c, s = factors.to_tensor(c_np), factors.to_tensor(s_np)
    ci = dl.ddim_invert(m, c, steps=50, progress=False)
    si = dl.ddim_invert(m, s, steps=50, progress=False)
    space = clf.space
    lc, ls = factors.labels_of(cf, space), factors.labels_of(sf, space)
    bg_c, bg_s = metrics.border_colour(c), metrics.border_colour(s)
    effect = {}
    shown = []
    for gamma in (0.0, 0.3, 0.6, 1.0):
        cfg = dl.InjectionConfig(gamma=gamma, t_edit=400, t_boost=200, seed=0)
        y = dl.reverse(m, si.x_T, ci, cfg, progress=False)
        with torch.no_grad():
            logits = clf(y)
        row = {}
        for h in factors.CONTENT_HEADS + factors.STYLE_HEADS:
            pred = logits[h].argmax(1)
            row[h] = {"as_content": float((pred == lc[h]).float().mean()), "as_style": float((pred == ls[h]).float().mean())}
        bg = metrics.border_colour(y)
        row["background_colour_nearer_style"] = float(
            (metrics.colour_distance(bg, bg_s) < metrics.colour_distance(bg, bg_c)).float().mean())
        row["structure_sim_content"] = metrics.structure_similarity(y, c).mean().item()
        row["structure_sim_style"] = metrics.structure_similarity(y, s).mean().item()
        effect[str(gamma)] = row
        shown.append(y[:8])
    res["injection"] = {"pairs": a.pairs, "t_edit": 400, "t_boost": 200, "by_gamma": effect}
    save_sheet(torch.cat([c[:8], s[:8]] + shown), 6, out / "injection.png")

    if a.loss_csv:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import pandas as pd
        d = pd.read_csv(a.loss_csv)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot(d.step, d.loss, lw=0.3, alpha=0.4, label="per step")
        ax.plot(d.step, d.loss.rolling(200, min_periods=1).mean(), lw=1.5, label="mean of 200")
        ax.set(xlabel="step", ylabel="ε-MSE", yscale="log", title="training loss")
        ax.legend()
        fig.tight_layout()
        atomic_write(out / "loss.png", lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    res["seconds"] = round(time.time() - t_start, 1)
    write_json(out / "evaluation.json", res, indent=1)

    print(f"| reconstruction PSNR, 50 steps | {res['psnr_50']['mean']:.1f} dB (min {res['psnr_50']['min']:.1f}) |")
    print(f"| reconstruction PSNR, 20 steps | {res['psnr_20']['mean']:.1f} dB (min {res['psnr_20']['min']:.1f}) |")
    print(f"| Fréchet distance samples vs held-out | {res['frechet_samples_vs_heldout']:.2f} |")
    print(f"| Fréchet distance samples (clip_x0) vs held-out | {res['frechet_clipped_samples_vs_heldout']:.2f} |")
    print(f"| Fréchet distance samples (stored {res['generation_defaults']}) vs held-out | "
          f"{res['frechet_stored_samples_vs_heldout']:.2f} |")
    print(f"| Fréchet distance held-out vs held-out | {res['frechet_heldout_vs_heldout']:.2f} |")
    print(f"| Fréchet distance clipped noise vs held-out | {res['frechet_noise_vs_heldout']:.2f} |")
    print("\n| γ | hair as content / as style | eyes | mouth | family | background (classifier) as style | border colour nearer style |")
    print("|---|---|---|---|---|---|---|")
    for gmm, r in effect.items():
        f = lambda h: f"{r[h]['as_content']:.2f} / {r[h]['as_style']:.2f}"  # noqa: E731
        print(f"| {gmm} | {f('hair')} | {f('eyes')} | {f('mouth')} | {f('family')} | "
              f"{r['background']['as_style']:.2f} | {r['background_colour_nearer_style']:.2f} |")
    print(f"\n({res['seconds']} s)")


if __name__ == "__main__":
    main()
