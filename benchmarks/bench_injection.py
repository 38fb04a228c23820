"""Speed of content injection against a naive implementation (issue 2).

Naive = written the obvious way: two stock U-Net calls per editing step (one with the h hook, one
without), one per plain step, one more per calibrated editing step. Ours shares the down path
(split forward). Both must give the same image (max abs difference ≤ 1e-4).

    python benchmarks/bench_injection.py                 # 256-px DDPM layout, random weights
    python benchmarks/bench_injection.py --model tiny    # quick check

Prints passes per image, seconds, and the measured and predicted ratios on the last lines.
"""
import argparse
import time

import torch

import diffstyle_lab as dl
from diffstyle_lab import maths
from diffstyle_lab.sampling import timestep_grid


@torch.no_grad()
def naive_inject(model, x_T, content, cfg):
    """The obvious implementation: stock forwards only."""
    hu, acp = model.hooked, model.alphas_cumprod
    ts = timestep_grid(cfg.steps, cfg.spacing, model.T)
    x = x_T.clone()
    for i in reversed(range(len(ts))):
        t = ts[i]
        a_t, a_prev = float(acp[t]), float(acp[ts[i - 1]]) if i > 0 else 1.0
        if t >= cfg.t_edit:
            hc = content.h_at(t)
            with hu.hooks(h=lambda h: maths.mix_h(h, hc, cfg.gamma, cfg.method)):
                eps_t = hu.eps(x, t)
            eps = hu.eps(x, t)
            if cfg.calibrate:
                x = x + maths.calibration_shift(x, eps, eps_t, a_t, cfg.omega)
                eps = hu.eps(x, t)
                eps_t = eps
            x = maths.ddim_step(maths.pred_x0(x, eps_t, a_t), eps, a_prev)
        else:
            eps = hu.eps(x, t)
            x = maths.ddim_step(maths.pred_x0(x, eps, a_t), eps, a_prev)
    return x


class Passes:
    """Counts down paths (conv_in) and up paths (up_blocks[0]) of the U-Net."""

    def __init__(self, unet):
        self.down = self.up = 0
        self.hs = [unet.conv_in.register_forward_hook(lambda *a: self._d()),
                   unet.up_blocks[0].register_forward_hook(lambda *a: self._u())]

    def _d(self):
        self.down += 1

    def _u(self):
        self.up += 1

    def reset(self):
        self.down = self.up = 0


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        _sync()
        t0 = time.perf_counter()
        out = fn()
        _sync()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ddpm256", choices=["ddpm256", "tiny", "default"])
    ap.add_argument("--steps", type=int, default=10, help="generation steps (10 keeps the 50-step editing share: 60 %%)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="interleaved rounds; the best time of each variant counts")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.manual_seed(0)
    m = {"ddpm256": dl.ddpm256_model, "tiny": dl.tiny_model, "default": dl.load_default_model}[a.model]().to(a.device)
    s = m.sample_size
    x_T = torch.randn(a.batch, 3, s, s, device=a.device)
    # a content trajectory: h recorded along a short inversion of random images
    content = dl.ddim_invert(m, torch.rand(a.batch, 3, s, s, device=a.device) * 2 - 1, steps=a.steps, progress=False)
    cfg = dl.InjectionConfig(gamma=0.3, t_edit=400, t_boost=0, steps=a.steps)
    ts = timestep_grid(a.steps)
    n_edit = sum(t >= cfg.t_edit for t in ts)
    print(f"model={a.model} ({m.source}) device={a.device} batch={a.batch} steps={a.steps} "
          f"editing steps={n_edit} threads={torch.get_num_threads()}")

    # share of the down path + middle in one pass, measured
    hu = m.hooked
    with torch.no_grad():
        _, t_full = timed(lambda: hu.eps(x_T, 500), 3)
        (h, st), t_down = timed(lambda: hu.down_mid(x_T, 500), 3)
        _, t_up = timed(lambda: hu.up(h, st), 3)
    d = t_down / (t_down + t_up)
    print(f"one pass {t_full:.3f}s: down+mid {t_down:.3f}s, up {t_up:.3f}s -> down share {d:.2f}")

    p = Passes(m.unet)
    results = {}
    runs = [
        ("plain DDIM", lambda: dl.generate(m, x_T, steps=a.steps, progress=False)),
        ("naive injection", lambda: naive_inject(m, x_T, content, cfg)),
        ("injection", lambda: dl.reverse(m, x_T, content, cfg, progress=False)),
        ("naive + calibration", lambda: naive_inject(m, x_T, content, dl.InjectionConfig(**{**cfg.to_dict(), "mask": None, "calibrate": True}))),
        ("injection + calibration", lambda: dl.reverse(m, x_T, content, dl.InjectionConfig(**{**cfg.to_dict(), "mask": None, "calibrate": True}), progress=False)),
    ]
    # interleave the variants and keep each one's best time: a noisy machine slows all of them alike
    best = {}
    for r in range(a.repeat):
        for name, fn in runs:
            p.reset()
            out, sec = timed(fn)
            if name not in best or sec < best[name][1]:
                best[name] = (out, sec, p.down, p.up)
    for name, _ in runs:
        out, sec, down, up = best[name]
        passes = d * down + (1 - d) * up          # U-Net passes per image (hooks count batched calls)
        results[name] = (out, sec, passes)
        print(f"{name:25s} {sec:8.2f} s   {sec / a.batch:8.2f} s/image   {a.batch / sec:8.2f} images/s   "
              f"down paths {down:3d}  up paths {up:3d}  passes/image {passes:6.2f}")
    diff = (results["naive injection"][0] - results["injection"][0]).abs().max().item()
    diffc = (results["naive + calibration"][0] - results["injection + calibration"][0]).abs().max().item()
    print(f"max |naive - ours|: {diff:.2e} (injection), {diffc:.2e} (calibration)  -> "
          f"{'same image' if max(diff, diffc) <= 1e-4 else 'DIFFERENT'}")
    n = len(ts)
    pred = (2 * n_edit + (n - n_edit)) / ((1 + (1 - d)) * n_edit + (n - n_edit))
    pred_paper = (2 * n_edit + (n - n_edit)) / (1.73 * n_edit + (n - n_edit))
    predc = (3 * n_edit + (n - n_edit)) / ((2 + (1 - d)) * n_edit + (n - n_edit))
    r = results["naive injection"][1] / results["injection"][1]
    rc = results["naive + calibration"][1] / results["injection + calibration"][1]
    rp = results["injection"][1] / results["plain DDIM"][1]
    print(f"injection cost vs plain DDIM: {rp:.2f}x (passes {results['injection'][2] / n:.2f} per step)")
    print(f"ratio vs naive with calibration: {rc:.2f} (predicted {predc:.2f})")
    print(f"ratio vs naive: {r:.2f} (predicted {pred:.2f} from the measured down share {d:.2f}; "
          f"{pred_paper:.2f} from the paper's 27 %)")
    ips = {k: a.batch / v[1] for k, v in results.items()}
    print(f"summary: device={a.device} ({torch.cuda.get_device_name() if a.device.startswith('cuda') else 'cpu'}) "
          f"model={a.model} batch={a.batch} steps={a.steps}: images/s plain DDIM {ips['plain DDIM']:.2f}, "
          f"injection {ips['injection']:.2f}, injection+calibration {ips['injection + calibration']:.2f}; "
          f"ratio vs naive {r:.2f} (injection), {rc:.2f} (with calibration)")


if __name__ == "__main__":
    main()
