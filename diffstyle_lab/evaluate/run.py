"""How an evaluation runs: every setting of a plan on every pair, one resumable block per setting in
``<out_dir>/blocks/`` (a CSV of per-pair rows, then a JSON with set-level numbers and timings, written last;
a rerun skips finished blocks), in this process or on Dask workers, and the tidy tables of the blocks."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import operator
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..cache import atomic_write
from .paper_metrics import ArcFaceIdentity, InceptionFID, VGGGram, paper_metric_status, weights_path
from ..sampling import reverse
from .measures import (METRICS_VERSION, PAIR_METRIC_FAMILIES, FrechetReference, family_names, frechet_with_ci,
                       pair_metrics)
from .plan import PairSet, PlanEntry, Setting, digest, fixed_config_fields, setting_ids


# Baselines: images scored as if they were results (the "reference" rows of every table): name → pairs → N×3×H×W.
BASELINES: dict[str, Callable[[PairSet], torch.Tensor]] = {"content image": operator.attrgetter("content"),
                                                           "style image": operator.attrgetter("style")}


def baseline_id(name: str, ctx_hash: str) -> str:
    return f"reference_{name.replace(' ', '_')}-{ctx_hash}"


# Shipping the model and the classifier to workers
def _state_bytes(module) -> bytes:
    from safetensors.torch import save
    return save({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})


def model_payload(model) -> dict:
    """A picklable description of a :class:`~diffstyle_lab.DiffusionModel` (config + safetensors bytes)."""
    unet = model.unet
    return {"kind": "diffusion", "class": type(unet).__name__, "config": dict(unet.config),
            "weights": _state_bytes(unet), "scheduler": dict(model.scheduler_config), "source": model.source,
            "revision": model.revision, "hash": model.weights_hash}


def classifier_payload(net) -> dict:
    weights = _state_bytes(net)
    return {"kind": "classifier", "space": net.space, "width": int(net.body[0].weight.shape[0]),
            "weights": weights, "hash": hashlib.sha256(weights).hexdigest()}


_LOADED: dict = {}


def _resolve(obj):
    """A payload becomes the object it describes (once per worker process); objects pass through."""
    if not isinstance(obj, dict) or "kind" not in obj:
        return obj
    key = (obj["kind"], obj["hash"])
    if key in _LOADED:
        return _LOADED[key]
    from safetensors.torch import load
    if obj["kind"] == "diffusion":
        import diffusers
        from ..models import DiffusionModel, alphas_cumprod_from_config
        state = load(obj["weights"])
        unet = getattr(diffusers, obj["class"]).from_config(obj["config"]).to(next(iter(state.values())).dtype)
        unet.load_state_dict(state, strict=True)
        unet = unet.eval().requires_grad_(False)
        out = DiffusionModel(unet, alphas_cumprod_from_config(obj["scheduler"]), obj["scheduler"], obj["source"],
                             obj["revision"])
        if out.weights_hash != obj["hash"]:
            raise RuntimeError("the model rebuilt on a worker does not hash like the one shipped")
    else:
        from ..faces.factors import FactorNet
        out = FactorNet(obj["space"], width=obj["width"])
        out.load_state_dict(load(obj["weights"]), strict=True)
        out = out.eval().requires_grad_(False)
    _LOADED.clear() if len(_LOADED) > 8 else None
    _LOADED[key] = out
    return out


def _paper_nets(paths: dict) -> dict:
    key = ("paper", json.dumps(paths, sort_keys=True))
    if key not in _LOADED:
        _LOADED[key] = {k: net(paths[k]) for k, net in (("arcface", ArcFaceIdentity), ("vgg", VGGGram),
                                                        ("inception", InceptionFID)) if k in paths}
    return _LOADED[key]


def _uint8(x: torch.Tensor) -> np.ndarray:
    """N×3×H×W in [−1, 1] → N×H×W×3 uint8, as the images are saved."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _measure(y, pairs: PairSet, idx: list[int], clf, nets: dict, families) -> dict:
    """A part of a block: the per-pair rows and the features of results ``y``, made from pairs ``idx``."""
    ii = torch.as_tensor(idx)
    cf, sf = ([f[i] for i in idx] if f is not None else None for f in (pairs.content_factors, pairs.style_factors))
    rows = pair_metrics(y, pairs.content[ii], pairs.style[ii], clf, cf, sf,
                        {k: v for k, v in nets.items() if k != "inception"}, families)
    rows["pair"] = idx
    out = {"rows": rows, "features": clf.features(y).double().numpy() if clf is not None else None}
    if "inception" in nets:
        out["inception"] = nets["inception"].features(y).double().numpy()
    return out


def _run_chunk(ctx: dict, setting: Setting, idx: list[int], threads: int | None = None) -> dict:
    """One unit of work: a setting on a chunk of pairs (in this process or on a Dask worker)."""
    if threads:
        torch.set_num_threads(int(threads))
    model, clf, nets = _resolve(ctx["model"]), _resolve(ctx["classifier"]), _paper_nets(ctx["paper"])
    cfg = setting.config(**ctx["fixed"])
    ii = torch.as_tensor(idx)
    t0 = time.perf_counter()
    # per-pair boosting noise (seed + pair index): a pair's result does not depend on its chunk
    y = reverse(model, ctx["style_x_T"][ii], ctx["content_inv"].select(ii), cfg, progress=False,
                sample_seeds=[ctx["seed"] + i for i in idx]).float().cpu()
    y = y.clamp(-1, 1)                  # metrics see the image as it would be saved
    t1 = time.perf_counter()
    out = _measure(y, ctx["pairs"], idx, clf, nets, ctx["families"])
    out.update(idx=list(idx), images=_uint8(y), seconds={"injection": t1 - t0, "metrics": time.perf_counter() - t1})
    return out


@dataclasses.dataclass
class Evaluation:
    """What :func:`evaluate` returns: the tidy tables and where the blocks are."""

    out_dir: Path
    tables: dict
    computed: list            # setting ids computed by this call
    skipped: list             # setting ids found finished on disk
    wall_seconds: float
    phases: dict = dataclasses.field(default_factory=dict)   # seconds of this call: inversion, sweep


def _atomic_write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _block_done(blocks: Path, sid: str) -> bool:
    j, c = blocks / f"{sid}.json", blocks / f"{sid}.csv"
    if not (j.is_file() and c.is_file()):
        return False
    try:
        return json.loads(j.read_text()).get("setting_id") == sid
    except (OSError, ValueError):
        return False


def _chunks(n: int, size: int | None) -> list[list[int]]:
    size = n if not size else max(1, int(size))
    return [list(range(a, min(a + size, n))) for a in range(0, n, size)]


def _dask_client(scheduler, n_workers: int, threads_per_worker: int):
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise ImportError("running on Dask needs the scale extra: pip install 'diffstyle_lab[scale]' "
                          "(dask[distributed])") from e
    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler in ("local", True):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=None)
        return Client(cluster), cluster
    return Client(scheduler), None


def evaluate(model, plan: Sequence[PlanEntry], pairs: PairSet, out_dir, *, steps: int = 50,
             inversion_steps: int | None = None, spacing: str = "authors", record_last: bool = True, seed: int = 0,
             classifier="default", reference=1000, reference_seed: int = 90_000, n_boot: int = 1000,
             n_boot_frechet: int = 200, level: float = 0.95, chunk_size: int | None = None, scheduler=None,
             n_workers: int = 2, threads_per_worker: int = 1, paper_weights: dict | None = None,
             paper_metrics="auto", keep_images: bool = True, progress: bool = True,
             config_fields: Mapping | None = None, families: Sequence[Callable] = PAIR_METRIC_FAMILIES,
             baselines: Mapping[str, Callable[[PairSet], torch.Tensor]] = BASELINES) -> Evaluation:
    """Run ``plan`` on ``pairs`` and write one block per setting under ``out_dir/blocks`` (resumable). Each image
    is inverted once (``inversion_steps``, cached in ``out_dir/inversions``) and reused by every setting.

    * ``classifier`` — a FactorNet, ``"default"`` (``factors.load()``) or None (generic metrics only).
    * ``reference`` — real images for the Fréchet distance (a tensor), or a number of fresh avatar renders.
    * ``scheduler`` — None: in this process; ``"local"``: a Dask LocalCluster of ``n_workers`` processes ×
      ``threads_per_worker`` threads; an address (``"tcp://host:8786"``) or a ``distributed.Client``: that
      cluster. Work units are (setting, chunk of ``chunk_size`` pairs); the client writes the blocks. Pair i's
      boosting noise is seeded with ``seed + i``, so results depend neither on the scheduler nor on the chunking.
    * ``paper_metrics`` — ``"auto"``: the paper's networks whose weights are present
      (:func:`paper_metrics.paper_metric_status`); a list of names: those, or
      :class:`paper_metrics.MissingWeightsError`; ``()``: none. ``paper_weights`` maps names to files.
    * ``config_fields`` — other :class:`~diffstyle_lab.InjectionConfig` fields, the same for every setting
      (e.g. ``{"inject_every": 20}``); the grid, seed, ``inversion_steps`` and ``record_last`` are arguments.
    * ``families`` — the per-pair metric families; ``baselines`` — images scored as if they were results, one
      "reference" row each. Both enter the run's identity, as do InjectionConfig's fixed fields.
    """
    t_start = time.perf_counter()
    phases = {"inversion": 0.0, "sweep": 0.0}
    out_dir = Path(out_dir)
    blocks = out_dir / "blocks"
    blocks.mkdir(parents=True, exist_ok=True)
    inversion_steps = inversion_steps or steps
    fixed = {**(config_fields or {}), "steps": steps, "spacing": spacing, "seed": seed,
             "inversion_steps": inversion_steps, "record_last": record_last}
    if set(config_fields or ()) & {"steps", "spacing", "seed", "inversion_steps", "record_last"}:
        raise ValueError("config_fields: pass steps, spacing, seed, inversion_steps and record_last as evaluate's "
                         "own arguments")
    if classifier == "default":
        from ..faces import factors
        classifier = factors.load()
    paper = _paper_selection(paper_metrics, paper_weights)
    families, baselines = tuple(families), dict(baselines)

    clf_hash = classifier_payload(classifier)["hash"] if classifier is not None else None
    context = {"metrics_version": METRICS_VERSION, "model": model.weights_hash, "pairs": pairs.fingerprint(),
               "steps": steps, "inversion_steps": inversion_steps, "spacing": spacing, "record_last": record_last,
               "seed": seed, "classifier": clf_hash, "paper": sorted(paper), "families": family_names(families),
               "config": fixed_config_fields(**fixed)}
    ctx_hash = digest(context)[:10]
    entries = list(plan)
    ids = setting_ids(entries, ctx_hash)
    unique = {}
    for e in entries:
        unique.setdefault(ids[e], e.setting)
    todo = [sid for sid in unique if not _block_done(blocks, sid)]
    skipped = [sid for sid in unique if sid not in todo]

    # real images for the Fréchet distance (needed only when a block is still to be made)
    ref_sids = {name: baseline_id(name, ctx_hash) for name in baselines}
    need_ref = bool(todo) or not all(_block_done(blocks, sid) for sid in ref_sids.values())
    ref_feats, ref_incep, ref_n = None, None, 0
    t_ref = time.perf_counter()
    if classifier is not None and reference is not None and need_ref:
        ref_imgs = _reference_images(reference, reference_seed, pairs.content.shape[-1])
        ref_n = len(ref_imgs)
        ref_feats = FrechetReference(classifier.features(ref_imgs).double().numpy())
        if "inception" in paper:
            ref_incep = FrechetReference(_paper_nets(paper)["inception"].features(ref_imgs).double().numpy())
    t_ref = time.perf_counter() - t_ref

    prev = out_dir / "pairs_preview.npz"
    if not prev.is_file():
        b = io.BytesIO()
        np.savez(b, content=_uint8(pairs.content[:16]), style=_uint8(pairs.style[:16]))
        _atomic_write(prev, b.getvalue())
    timing_path = out_dir / f"timing-{ctx_hash}.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    fd_args = dict(n_boot=n_boot_frechet, level=level, seed=seed)

    # reference rows: each baseline's images scored as if they were results
    for name, make in baselines.items():
        sid = ref_sids[name]
        if not _block_done(blocks, sid):
            t0 = time.perf_counter()
            part = _measure(make(pairs).float(), pairs, list(range(len(pairs))), classifier, _paper_nets(paper),
                            families)
            _finish_block(blocks, sid, None, name, [part], ref_feats, ref_incep, fd_args,
                          {"injection": 0.0, "metrics": time.perf_counter() - t0}, keep_images=False,
                          extra={"reference_n": ref_n})

    if todo:
        t0 = time.perf_counter()
        from ..cache import InversionCache, cached_invert
        cache = InversionCache(out_dir / "inversions")
        content_inv, style_inv = (cached_invert(model, x, inversion_steps, spacing, record_last=record_last,
                                                progress=progress, cache=cache) for x in (pairs.content, pairs.style))
        t_inv = time.perf_counter() - t0
        if cache.misses:                      # the time of actually inverting (not of reading the cache)
            timing["inversion"] = t_inv
            timing["inverted_images"] = cache.misses
        timing.setdefault("inversion", t_inv)
        timing["reference_features"] = t_ref
        _atomic_write(timing_path, json.dumps(timing).encode())
        ctx = {"model": model, "classifier": classifier, "content_inv": content_inv, "style_x_T": style_inv.x_T,
               "pairs": pairs, "seed": seed, "paper": paper, "families": families, "fixed": fixed}
        chunks = _chunks(len(pairs), chunk_size)
        units = [(sid, idx) for sid in todo for idx in chunks]
        done_parts: dict = {sid: [] for sid in todo}

        def accept(sid, part):
            done_parts[sid].append(part)
            if len(done_parts[sid]) == len(chunks):
                parts = sorted(done_parts.pop(sid), key=lambda p: p["idx"][0])
                secs = {k: sum(p["seconds"][k] for p in parts) for k in ("injection", "metrics")}
                _finish_block(blocks, sid, unique[sid], unique[sid].label, parts, ref_feats, ref_incep, fd_args,
                              secs, keep_images=keep_images, extra={"reference_n": ref_n, "chunks": len(chunks)})

        from tqdm.auto import tqdm
        bar = tqdm(total=len(units), desc="settings×chunks", disable=not progress)
        t_sweep = time.perf_counter()
        if scheduler is None:
            for sid, idx in units:
                accept(sid, _run_chunk(ctx, unique[sid], idx))
                bar.update(1)
        else:
            from distributed import as_completed
            client, cluster = _dask_client(scheduler, n_workers, threads_per_worker)
            try:
                wctx = dict(ctx, model=model_payload(model),
                            classifier=classifier_payload(classifier) if classifier is not None else None)
                fut_ctx = client.scatter(wctx, broadcast=True)
                futs = {client.submit(_run_chunk, fut_ctx, unique[sid], idx, threads_per_worker, pure=False): sid
                        for sid, idx in units}
                for fut, part in as_completed(futs, with_results=True):
                    accept(futs[fut], part)
                    bar.update(1)
            finally:
                if cluster is not None:
                    client.close()
                    cluster.close()
        bar.close()
        phases["inversion"] = t_inv
        phases["sweep"] = time.perf_counter() - t_sweep

    wall = time.perf_counter() - t_start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with open(out_dir / "runs.jsonl", "a") as fh:
        fh.write(json.dumps({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "context": ctx_hash,
                             "wall_seconds": wall, "computed": len(todo), "skipped": len(skipped),
                             "scheduler": None if scheduler is None else str(scheduler),
                             "n_workers": n_workers if scheduler is not None else 1, "load_average": load}) + "\n")
    calls = [json.loads(line) for line in (out_dir / "runs.jsonl").read_text().splitlines() if line.strip()]
    calls = [c for c in calls if c.get("context") == ctx_hash]
    info = {"model_source": model.source, "model_sha256": model.weights_hash, "pairs": pairs.name,
            "n_pairs": len(pairs), "steps": steps, "inversion_steps": inversion_steps, "spacing": spacing,
            "record_last": record_last, "seed": seed, "classifier_sha256": clf_hash, "reference_n": ref_n,
            "n_boot": n_boot, "n_boot_frechet": n_boot_frechet, "level": level, "context": ctx_hash,
            "wall_seconds_this_call": wall, "computed_this_call": len(todo), "skipped_this_call": len(skipped),
            "wall_seconds_all_calls": sum(c["wall_seconds"] for c in calls), "calls": len(calls),
            "load_average_end": load,
            "scheduler": "in-process" if scheduler is None else str(scheduler),
            "workers": 1 if scheduler is None else n_workers, "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "paper_metrics": {k: v["message"].splitlines()[0] if v["available"] else v["message"]
                              for k, v in paper_metric_status(paper_weights).items()},
            "paper_metrics_used": sorted(paper)}
    tables = load_tables(out_dir, entries, ids, ctx_hash, info, tuple(baselines))
    return Evaluation(out_dir, tables, todo, skipped, wall, phases)


def _paper_selection(paper_metrics, paper_weights) -> dict:
    if paper_metrics == "auto":
        return {k: v["path"] for k, v in paper_metric_status(paper_weights).items() if v["available"]}
    return {name: str(weights_path(name, (paper_weights or {}).get(name))) for name in paper_metrics or ()}


def _reference_images(reference, seed, size):
    if torch.is_tensor(reference):
        return reference.float()
    from ..faces import avatars
    from ..faces.factors import to_tensor
    x, _ = avatars.make_faces(int(reference), seed=seed, size=size)
    return to_tensor(x)


def _finish_block(blocks: Path, sid: str, setting: Setting | None, label: str, parts, ref_feats, ref_incep,
                  fd_args, seconds, keep_images: bool, extra: dict):
    import pandas as pd
    rows = pd.concat([p["rows"] for p in parts], ignore_index=True).drop(columns=["pair_pos"])
    rows.insert(0, "setting_id", sid)
    n = len(rows)
    sets = []
    for name, ref, key in (("frechet_classifier", ref_feats, "features"), ("frechet_inception", ref_incep, "inception")):
        if ref is None or parts[0].get(key) is None:
            continue
        feats = np.concatenate([p[key] for p in parts])
        est, lo, hi, reps = frechet_with_ci(feats, ref, **fd_args)
        sets.append({"metric": name, "value": est, "ci_low": lo, "ci_high": hi, "n": n, "n_ref": ref.n,
                     "replicates": [float(r) for r in reps]})
    _atomic_write(blocks / f"{sid}.csv", rows.to_csv(index=False).encode())
    if keep_images and parts[0].get("images") is not None:
        b = io.BytesIO()
        np.save(b, np.concatenate([p["images"] for p in parts]))
        _atomic_write(blocks / f"{sid}.npy", b.getvalue())
    meta = {"setting_id": sid, "label": label, "setting": None if setting is None else dataclasses.asdict(setting),
            "n_pairs": n, "seconds": seconds, "sets": sets, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    _atomic_write(blocks / f"{sid}.json", json.dumps(meta).encode())     # last: marks the block finished


def load_tables(out_dir, plan: Sequence[PlanEntry], ids: dict, ctx_hash: str, info: dict,
                baselines: Sequence[str] = tuple(BASELINES)) -> dict:
    """Assemble the tidy tables of a run from its blocks: ``pairs`` (one row per pair × setting),
    ``plan`` (sweep, x, setting), ``settings``, ``sets`` (set-level metrics with intervals),
    ``sets_boot`` (their bootstrap replicates), ``timing`` and ``run`` (key/value)."""
    import pandas as pd
    blocks = Path(out_dir) / "blocks"
    settings, pair_frames, sets, boot = [], [], [], []
    plan_rows = [{"sweep": e.sweep, "x": e.x, "setting_id": ids[e], **_setting_cols(e.setting)} for e in plan]
    plan_rows += [{"sweep": "reference", "x": name, "setting_id": baseline_id(name, ctx_hash)} for name in baselines]
    for sid in dict.fromkeys(row["setting_id"] for row in plan_rows):
        if not _block_done(blocks, sid):
            continue
        meta = json.loads((blocks / f"{sid}.json").read_text())
        pair_frames.append(pd.read_csv(blocks / f"{sid}.csv"))
        settings.append({"setting_id": sid, "label": meta["label"], "n_pairs": meta["n_pairs"],
                         "injection_seconds": meta["seconds"]["injection"],
                         "metrics_seconds": meta["seconds"]["metrics"], "finished": meta["finished"],
                         **(_setting_cols(Setting(**meta["setting"])) if meta["setting"] else {})})
        for s in meta["sets"]:
            sets.append({"setting_id": sid, **{k: v for k, v in s.items() if k != "replicates"}})
            boot += [{"setting_id": sid, "metric": s["metric"], "b": b, "value": v}
                     for b, v in enumerate(s["replicates"])]
    timing_path = Path(out_dir) / f"timing-{ctx_hash}.json"
    tim = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    st = pd.DataFrame(settings)
    injected = ~st.setting_id.str.startswith("reference_") if len(st) else []
    inj = float(st.loc[injected, "injection_seconds"].sum()) if len(st) else 0.0
    met = float(st["metrics_seconds"].sum()) if len(st) else 0.0
    stages = [("inversion", tim.get("inversion", float("nan")), f"{tim.get('inverted_images', 2 * info['n_pairs'])} "
               f"images × {info['inversion_steps']} steps, once"),
              ("injection", inj, f"{int(sum(injected))} settings × {info['n_pairs']} pairs × {info['steps']} steps"),
              ("metrics", met + tim.get("reference_features", 0.0), "per-pair metrics, Fréchet distances + "
               "bootstrap, reference features")]
    total = sum(s for _, s, _ in stages if math.isfinite(s))
    timing = pd.DataFrame([{"stage": a, "seconds": s, "share": s / total if total else float("nan"), "detail": d}
                           for a, s, d in stages])
    info = dict(info, compute_seconds=total)
    return {"pairs": pd.concat(pair_frames, ignore_index=True) if pair_frames else pd.DataFrame(),
            "plan": pd.DataFrame(plan_rows), "settings": st, "sets": pd.DataFrame(sets),
            "sets_boot": pd.DataFrame(boot), "timing": timing,
            "run": pd.DataFrame([{"key": k, "value": json.dumps(v) if isinstance(v, (dict, list)) else v}
                                 for k, v in info.items()])}


def _setting_cols(s: Setting) -> dict:
    return {**dataclasses.asdict(s), "omega": s.omega if s.calibrate else np.nan}


# Scale-out demonstration
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
    if classifier == "default":
        from ..faces import factors
        classifier = factors.load()
    ref = _reference_images(200, 90_000, pairs.content.shape[-1])
    res = {}
    for nw in workers:
        t0 = time.perf_counter()
        client, cluster = _dask_client("local", nw, 1)
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
            "work_units": n_set * len(_chunks(len(pairs), chunk_size)), "workers_1": a, "workers_n": b,
            "seconds_1": res[a]["sweep"], "seconds_n": res[b]["sweep"], "speedup": res[a]["sweep"] / res[b]["sweep"],
            "call_1": res[a]["call"], "call_n": res[b]["call"], "speedup_call": res[a]["call"] / res[b]["call"],
            "total_1": res[a]["total"], "total_n": res[b]["total"], "cpu_count": os.cpu_count(),
            "parallel_capacity": parallel_capacity(b), "note": note}
