"""Scale-out demonstration: the same sweep on Dask LocalClusters of 1 and n worker processes, and how much
parallel work the machine can do right now (:func:`parallel_capacity`), so a speed-up is read against it."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Sequence

import torch

from .plan import PairSet, PlanEntry


def _burn(start_at: float, reps: int = 200) -> float:
    """Fixed single-thread work (512² matmuls), started at a common wall-clock time; returns its seconds."""
    torch.set_num_threads(1)
    x = torch.randn(512, 512)
    while time.time() < start_at:
        time.sleep(0.005)
    t = time.perf_counter()
    for _ in range(reps):
        x @ x
    return time.perf_counter() - t


def parallel_capacity(n: int = 2) -> float:
    """How many cores' worth of work ``n`` single-thread processes get done at once right now (n on idle
    cores, ~1 when other jobs leave one core free): n·t_alone / t_together."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as ex:
        list(ex.map(_burn, [0.0] * n, [5] * n))                       # start the processes
        alone = ex.submit(_burn, 0.0).result()
        start = time.time() + 0.5
        together = max(ex.map(_burn, [start] * n))
    return n * alone / together


def _warm_worker():
    import diffusers  # noqa: F401
    from .. import sampling  # noqa: F401
    from ..faces import factors  # noqa: F401
    return True


def scaling_demo(model, plan: Sequence[PlanEntry], pairs: PairSet, workers: Sequence[int] = (1, 2), *,
                 steps: int = 10, classifier="default", chunk_size: int | None = None, note: str = "",
                 progress: bool = False, **kw) -> dict:
    """Run the same sweep on Dask LocalClusters of ``workers[0]`` and ``workers[-1]`` worker processes (one
    thread each), each in a fresh folder (nothing resumed). Returns the times of the distributed phase
    (settings on the workers), of the whole call (with the client-side inversion) and with cluster
    start-up, and their ratios."""
    from .run import chunks, evaluate, reference_images
    from .workers import dask_client
    if classifier == "default":
        from ..faces import factors
        classifier = factors.load()
    ref = reference_images(200, 90_000, pairs.content.shape[-1])
    res = {}
    for nw in workers:
        t0 = time.perf_counter()
        client, cluster = dask_client("local", nw, 1)
        client.wait_for_workers(nw)
        client.run(_warm_worker)          # imports (torch, diffusers) belong to start-up, not to the sweep
        try:
            with tempfile.TemporaryDirectory() as tmp:
                r = evaluate(model, plan, pairs, tmp, steps=steps, classifier=classifier, scheduler=client,
                             n_workers=nw, chunk_size=chunk_size, progress=progress, reference=ref,
                             n_boot_frechet=50, **kw)
            t2 = time.perf_counter()
        finally:
            client.close()
            cluster.close()
        res[nw] = {"sweep": r.phases["sweep"], "call": r.wall_seconds, "total": t2 - t0}
    a, b = workers[0], workers[-1]
    n_set = len({e.setting.label for e in plan})
    return {"settings": n_set, "pairs": len(pairs), "steps": steps,
            "work_units": n_set * len(chunks(len(pairs), chunk_size)), "workers_1": a, "workers_n": b,
            "seconds_1": res[a]["sweep"], "seconds_n": res[b]["sweep"], "speedup": res[a]["sweep"] / res[b]["sweep"],
            "call_1": res[a]["call"], "call_n": res[b]["call"], "speedup_call": res[a]["call"] / res[b]["call"],
            "total_1": res[a]["total"], "total_n": res[b]["total"], "cpu_count": os.cpu_count(),
            "parallel_capacity": parallel_capacity(b), "note": note}
