"""How an evaluation runs: every setting of a plan on every pair, one resumable block per setting in
``<out_dir>/blocks/`` (a CSV of per-pair rows, then a JSON with set-level numbers and timings, written last;
a rerun skips finished blocks), in this process or on Dask workers, and the tidy tables of the blocks.
What runs on a worker and the payloads it gets are in :mod:`.workers`; the scale-out demonstration is in
:mod:`.benchmark` (its names are importable from here too)."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import operator
import os
import platform
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..fileio import read_json, write_bytes, write_json, write_npz
from .benchmark import parallel_capacity, scaling_demo  # noqa: F401  (public here since before the split)
from .measures import METRICS_VERSION, PAIR_METRIC_FAMILIES, FrechetReference, family_names, frechet_with_ci
from .paper_metrics import paper_metric_status, weights_path
from .plan import PairSet, PlanEntry, Setting, digest, fixed_config_fields, setting_ids
from .workers import classifier_payload, model_payload, worker_context  # noqa: F401  (payloads: public here too)
from .workers import dask_client, measure, paper_nets, uint8
from .workers import run_chunk as _run_chunk                # the unit of work (tests count its calls)


# Baselines: images scored as if they were results (the "reference" rows of every table): name → pairs → N×3×H×W.
BASELINES: dict[str, Callable[[PairSet], torch.Tensor]] = {"content image": operator.attrgetter("content"),
                                                           "style image": operator.attrgetter("style")}
_FIX = "; delete it to recompute"


def baseline_id(name: str, ctx_hash: str) -> str:
    return f"reference_{name.replace(' ', '_')}-{ctx_hash}"


@dataclasses.dataclass
class Evaluation:
    """What :func:`evaluate` returns: the tidy tables and where the blocks are."""

    out_dir: Path
    tables: dict
    computed: list            # setting ids computed by this call
    skipped: list             # setting ids found finished on disk
    wall_seconds: float
    phases: dict = dataclasses.field(default_factory=dict)   # seconds of this call: inversion, sweep


def _block_done(blocks: Path, sid: str) -> bool:
    j, c = blocks / f"{sid}.json", blocks / f"{sid}.csv"
    if not (j.is_file() and c.is_file()):
        return False
    try:
        return read_json(j).get("setting_id") == sid
    except (OSError, ValueError):
        return False


def chunks(n: int, size: int | None) -> list[list[int]]:
    """Pair indices 0…n−1 in chunks of ``size`` (None or 0: one chunk)."""
    size = n if not size else max(1, int(size))
    return [list(range(a, min(a + size, n))) for a in range(0, n, size)]


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
      The mixing rules the plan uses travel with the work (:func:`.workers.worker_context`), so a rule registered
      in a notebook runs on the workers too.
    * ``paper_metrics`` — ``"auto"``: the paper's networks whose weights are present
      (:func:`paper_metrics.paper_metric_status`); a list of names: those, or
      :class:`paper_metrics.MissingWeightsError`; ``()``: none. ``paper_weights`` maps names to files.
    * ``config_fields`` — other :class:`~diffstyle_lab.InjectionConfig` fields, the same for every setting
      (e.g. ``{"inject_every": 20}``); the grid, seed, ``inversion_steps`` and ``record_last`` are arguments.
    * ``families`` — the per-pair metric families; ``baselines`` — images scored as if they were results, one
      "reference" row each. Both enter the run's identity, as do InjectionConfig's fixed fields.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    blocks = out_dir / "blocks"
    blocks.mkdir(parents=True, exist_ok=True)
    inversion_steps = inversion_steps or steps
    if set(config_fields or ()) & {"steps", "spacing", "seed", "inversion_steps", "record_last"}:
        raise ValueError("config_fields: pass steps, spacing, seed, inversion_steps and record_last as evaluate's "
                         "own arguments")
    fixed = {**(config_fields or {}), "steps": steps, "spacing": spacing, "seed": seed,
             "inversion_steps": inversion_steps, "record_last": record_last}
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
    t_ref = time.perf_counter()
    refs = _reference_features(classifier, reference if need_ref else None, reference_seed, pairs, paper)
    t_ref = time.perf_counter() - t_ref

    prev = out_dir / "pairs_preview.npz"
    if not prev.is_file():
        write_npz(prev, content=uint8(pairs.content[:16]), style=uint8(pairs.style[:16]))
    timing_path = out_dir / f"timing-{ctx_hash}.json"
    timing = read_json(timing_path, _FIX) if timing_path.is_file() else {}
    fd_args = dict(n_boot=n_boot_frechet, level=level, seed=seed)

    _score_baselines(blocks, {ref_sids[name]: (name, make) for name, make in baselines.items()}, pairs, classifier,
                     paper, families, refs, fd_args)
    phases = {"inversion": 0.0, "sweep": 0.0}
    if todo:
        ctx = {"model": model, "classifier": classifier, "pairs": pairs, "seed": seed, "paper": paper,
               "families": families, "fixed": fixed}
        phases["inversion"] = _invert_pairs(ctx, out_dir, inversion_steps, spacing, record_last, progress)
        timing.setdefault("inversion", phases["inversion"])
        timing.update(ctx.pop("timing"), reference_features=t_ref)
        write_json(timing_path, timing, indent=None)
        finish = functools.partial(_finish_block, blocks, refs=refs, fd_args=fd_args, keep_images=keep_images)
        phases["sweep"] = _sweep(ctx, {sid: unique[sid] for sid in todo}, chunks(len(pairs), chunk_size), finish,
                                 scheduler, n_workers, threads_per_worker, progress, refs["n"])

    wall = time.perf_counter() - t_start
    calls = _log_call(out_dir, ctx_hash, wall, len(todo), len(skipped), scheduler, n_workers)
    info = {"model_source": model.source, "model_sha256": model.weights_hash, "pairs": pairs.name,
            "n_pairs": len(pairs), "steps": steps, "inversion_steps": inversion_steps, "spacing": spacing,
            "record_last": record_last, "seed": seed, "classifier_sha256": clf_hash, "reference_n": refs["n"],
            "n_boot": n_boot, "n_boot_frechet": n_boot_frechet, "level": level, "context": ctx_hash,
            **_call_info(calls, wall, len(todo), len(skipped), scheduler, n_workers, paper, paper_weights)}
    tables = load_tables(out_dir, entries, ids, ctx_hash, info, tuple(baselines))
    return Evaluation(out_dir, tables, todo, skipped, wall, phases)


def _call_info(calls: list, wall: float, computed: int, skipped: int, scheduler, n_workers, paper: dict,
               paper_weights) -> dict:
    """The run table's entries about this call, the calls before it and the machine."""
    return {"wall_seconds_this_call": wall, "computed_this_call": computed, "skipped_this_call": skipped,
            "wall_seconds_all_calls": sum(c["wall_seconds"] for c in calls), "calls": len(calls),
            "load_average_end": calls[-1]["load_average"],
            "scheduler": "in-process" if scheduler is None else str(scheduler),
            "workers": 1 if scheduler is None else n_workers, "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "paper_metrics": {k: v["message"].splitlines()[0] if v["available"] else v["message"]
                              for k, v in paper_metric_status(paper_weights).items()},
            "paper_metrics_used": sorted(paper)}


def _reference_features(classifier, reference, reference_seed, pairs: PairSet, paper: dict) -> dict:
    """The Fréchet references (classifier and, when used, Inception features of the real images) and their
    count; None and 0 without a classifier or a reference."""
    out = {"features": None, "inception": None, "n": 0}
    if classifier is None or reference is None:
        return out
    imgs = reference_images(reference, reference_seed, pairs.content.shape[-1])
    out["n"] = len(imgs)
    out["features"] = FrechetReference(classifier.features(imgs).double().numpy())
    if "inception" in paper:
        out["inception"] = FrechetReference(paper_nets(paper)["inception"].features(imgs).double().numpy())
    return out


def _score_baselines(blocks: Path, todo: dict, pairs: PairSet, classifier, paper: dict, families, refs: dict,
                     fd_args: dict) -> None:
    """The reference rows: each baseline's images (``todo``: id → (name, images of the pairs)) scored as if they
    were results, where the block is not finished yet."""
    for sid, (name, make) in todo.items():
        if not _block_done(blocks, sid):
            t0 = time.perf_counter()
            part = measure(make(pairs).float(), pairs, list(range(len(pairs))), classifier, paper_nets(paper), families)
            _finish_block(blocks, sid, None, name, [part], refs, fd_args,
                          {"injection": 0.0, "metrics": time.perf_counter() - t0}, keep_images=False,
                          extra={"reference_n": refs["n"]})


def _invert_pairs(ctx: dict, out_dir: Path, inversion_steps, spacing, record_last, progress) -> float:
    """Invert every content and style image once (through ``out_dir/inversions``) into ``ctx``; returns the
    seconds and leaves the timing entries in ``ctx["timing"]``."""
    from ..cache import InversionCache, cached_invert
    t0 = time.perf_counter()
    cache = InversionCache(out_dir / "inversions")
    content_inv, style_inv = (cached_invert(ctx["model"], x, inversion_steps, spacing, record_last=record_last,
                                            progress=progress, cache=cache) for x in (ctx["pairs"].content,
                                                                                      ctx["pairs"].style))
    t_inv = time.perf_counter() - t0
    ctx.update(content_inv=content_inv, style_x_T=style_inv.x_T, timing={})
    if cache.misses:                      # the time of actually inverting (not of reading the cache)
        ctx["timing"] = {"inversion": t_inv, "inverted_images": cache.misses}
    return t_inv


def _sweep(ctx: dict, settings: dict, pair_chunks, finish, scheduler, n_workers, threads_per_worker, progress,
           reference_n) -> float:
    """Every (setting, chunk) unit, in this process or on Dask; a setting's block is written (``finish``) once
    all its chunks are back. Returns the seconds of the sweep."""
    units = [(sid, idx) for sid in settings for idx in pair_chunks]
    done_parts: dict = {sid: [] for sid in settings}

    def accept(sid, part):
        done_parts[sid].append(part)
        if len(done_parts[sid]) == len(pair_chunks):
            parts = sorted(done_parts.pop(sid), key=lambda p: p["idx"][0])
            secs = {k: sum(p["seconds"][k] for p in parts) for k in ("injection", "metrics")}
            finish(sid, settings[sid], settings[sid].label, parts, seconds=secs,
                   extra={"reference_n": reference_n, "chunks": len(pair_chunks)})

    from tqdm.auto import tqdm
    bar = tqdm(total=len(units), desc="settings×chunks", disable=not progress)
    t_sweep = time.perf_counter()
    if scheduler is None:
        for sid, idx in units:
            accept(sid, _run_chunk(ctx, settings[sid], idx))
            bar.update(1)
    else:
        from distributed import as_completed
        client, cluster = dask_client(scheduler, n_workers, threads_per_worker)
        try:
            fut_ctx = client.scatter(worker_context(ctx, settings.values()), broadcast=True)
            futs = {client.submit(_run_chunk, fut_ctx, settings[sid], idx, threads_per_worker, pure=False): sid
                    for sid, idx in units}
            for fut, part in as_completed(futs, with_results=True):
                accept(futs[fut], part)
                bar.update(1)
        finally:
            if cluster is not None:
                client.close()
                cluster.close()
    bar.close()
    return time.perf_counter() - t_sweep


def _log_call(out_dir: Path, ctx_hash: str, wall: float, computed: int, skipped: int, scheduler, n_workers) -> list:
    """Append this call to ``runs.jsonl``; returns the calls logged there for this context (this one last)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with open(out_dir / "runs.jsonl", "a") as fh:
        fh.write(json.dumps({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "context": ctx_hash,
                             "wall_seconds": wall, "computed": computed, "skipped": skipped,
                             "scheduler": None if scheduler is None else str(scheduler),
                             "n_workers": n_workers if scheduler is not None else 1, "load_average": load}) + "\n")
    calls = [json.loads(line) for line in (out_dir / "runs.jsonl").read_text().splitlines() if line.strip()]
    return [c for c in calls if c.get("context") == ctx_hash]


def _paper_selection(paper_metrics, paper_weights) -> dict:
    if paper_metrics == "auto":
        return {k: v["path"] for k, v in paper_metric_status(paper_weights).items() if v["available"]}
    return {name: str(weights_path(name, (paper_weights or {}).get(name))) for name in paper_metrics or ()}


def reference_images(reference, seed, size):
    """``reference`` itself when it is a tensor of images, else that many fresh avatar renders."""
    if torch.is_tensor(reference):
        return reference.float()
    from ..faces import avatars
    from ..faces.factors import to_tensor
    x, _ = avatars.make_faces(int(reference), seed=seed, size=size)
    return to_tensor(x)


def _finish_block(blocks: Path, sid: str, setting: Setting | None, label: str, parts, refs: dict, fd_args,
                  seconds, keep_images: bool, extra: dict):
    import pandas as pd
    rows = pd.concat([p["rows"] for p in parts], ignore_index=True).drop(columns=["pair_pos"])
    rows.insert(0, "setting_id", sid)
    n = len(rows)
    sets = []
    for name, key in (("frechet_classifier", "features"), ("frechet_inception", "inception")):
        ref = refs[key]
        if ref is None or parts[0].get(key) is None:
            continue
        feats = np.concatenate([p[key] for p in parts])
        est, lo, hi, reps = frechet_with_ci(feats, ref, **fd_args)
        sets.append({"metric": name, "value": est, "ci_low": lo, "ci_high": hi, "n": n, "n_ref": ref.n,
                     "replicates": [float(r) for r in reps]})
    write_bytes(blocks / f"{sid}.csv", rows.to_csv(index=False).encode())
    if keep_images and parts[0].get("images") is not None:
        b = io.BytesIO()
        np.save(b, np.concatenate([p["images"] for p in parts]))
        write_bytes(blocks / f"{sid}.npy", b.getvalue())
    meta = {"setting_id": sid, "label": label, "setting": None if setting is None else dataclasses.asdict(setting),
            "n_pairs": n, "seconds": seconds, "sets": sets, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    write_json(blocks / f"{sid}.json", meta, indent=None)     # last: marks the block finished


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
        meta = read_json(blocks / f"{sid}.json", _FIX)
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
    tim = read_json(timing_path, _FIX) if timing_path.is_file() else {}
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
