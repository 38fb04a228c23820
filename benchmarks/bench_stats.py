"""Cost of the statistics collectors on the 256-px DDPM layout (random weights, h = 512×8×8).

    python benchmarks/bench_stats.py                 # batch 1, 3 DDIM steps: 7 forward passes, ≈ 40 s on 2 idle cores
    python benchmarks/bench_stats.py --batch 2 --steps 2 --threads 1

Prints the time per sample of plain generation with and without a
:class:`~diffstyle_lab.stats.estimators.NormCollector` attached, the overhead of collecting, and the cost of
the collector's callback alone (per model evaluation, measured on synthetic 256-px-sized h and g,
so it is not hidden by the noise of a 5-second forward pass). Timings are wall-clock on whatever
else the machine is running; the callback-only number is the stable one.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="time the statistics collectors on the 256-px DDPM layout")
    p.add_argument("--batch", type=int, default=1, help="samples per run (1–2 on a CPU)")
    p.add_argument("--steps", type=int, default=3, help="DDIM steps per run")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the default)")
    p.add_argument("--callback-reps", type=int, default=50)
    a = p.parse_args(argv)

    import torch

    from diffstyle_lab import ddpm256_model, generate
    from diffstyle_lab.stats import estimators as stats
    from diffstyle_lab.sampling import StepInfo
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = ddpm256_model(seed=0)
    print(f"model: {model.source}, {sum(p.numel() for p in model.unet.parameters()) / 1e6:.1f} M parameters, "
          f"built in {time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}")
    x_T = stats.noise(model, 0, a.batch, seed=0)

    def run(callbacks):
        t = time.perf_counter()
        out = generate(model, x_T, steps=a.steps, progress=False, callbacks=callbacks)
        return time.perf_counter() - t, out

    with torch.no_grad():                   # warm-up (allocator, kernels): one forward pass
        model.hooked.eps(x_T, 999)
    plain, out_plain = run([])
    col = stats.NormCollector()
    with_col, out_col = run([col])
    table = col.table(model=model.source)
    assert torch.equal(out_plain, out_col), "collecting changed the samples"
    per = a.batch
    print(f"generation, batch {a.batch}, {a.steps} steps:")
    print(f"  without collector  {plain:7.2f} s   ({plain / per:6.2f} s per sample, "
          f"{plain / a.steps / per:5.2f} s per pass)")
    print(f"  with collector     {with_col:7.2f} s   ({with_col / per:6.2f} s per sample)")
    print(f"  overhead           {with_col - plain:+7.2f} s   ({100 * (with_col - plain) / plain:+.1f} %, wall clock; "
          "noise of the forward pass included)")
    if a.batch < 2:
        print("  (batch 1: no other sample to pair with, so the mixing settings are skipped here; "
              "the callback-only timing below includes them)")
    print(f"  collected {table.numel()} numbers = n·T·k = {table.n}·{len(table.ts)}·{len(col.quantities)}")

    # the callback alone, on tensors of the 256-px layout's shapes
    g = torch.Generator().manual_seed(0)
    b = max(2, a.batch)
    h = torch.randn(b, 512, 8, 8, generator=g)
    gg = torch.randn(b, 512, 8, 8, generator=g)
    x = torch.randn(b, 3, 256, 256, generator=g)
    times = []
    for k in range(a.callback_reps):
        c = stats.NormCollector(injection=True)
        info = StepInfo("inject", 0, 999, x, h, gg, h_tilde=0.9 * h, h_content=gg)
        t = time.perf_counter()
        c(info)
        times.append(time.perf_counter() - t)
    cb = statistics.median(times)
    print(f"collector callback alone (batch {b}, h and g 512×8×8, 5 mixing settings + injection): "
          f"{1e3 * cb:.2f} ms per model evaluation (median of {a.callback_reps}) = "
          f"{100 * cb / (plain / a.steps):.3f} % of one forward pass here")
    t = time.perf_counter()
    big = stats.NormTable(table.ts, {q: v.repeat(64, axis=0) for q, v in table.values.items()},
                          model=model.source, settings=table.settings)
    stats.summarise(big, n_boot=1000)
    print(f"summarise (n = {big.n}, T = {len(big.ts)}, 1000 bootstrap resamples): {time.perf_counter() - t:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
