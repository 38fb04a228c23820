"""The ground-truth summary of a model: content injection scored against the ideal of every pair
(:mod:`diffstyle_lab.faces.groundtruth`), summed up with the one verdict engine's intervals
(:mod:`diffstyle_lab.stats.verdicts`) — the model folder's ``summary.json`` the notebooks read, and the
sweeps of ``training/groundtruth_eval.py`` (a thin command line over this module).

For each (t_edit, t_boost, γ): mean RMSE to the ideal with a 95 % bootstrap interval over pairs, the paired
difference to the unchanged style image, the gap closed towards the reconstruction floor, the factor-match
rates (layout and identity as content; colours as style) and the background error relative to γ = 0.
References: the style image, the reconstructed ideal (floor), 0.7·style + 0.3·content, Reinhard.

``summary.json`` (schema 1): ``{"schema": 1, "model", "weights_sha256", "command", "settings": {gamma, t_edit,
t_boost, calibrate, omega, steps, method}, "sets": {"posed" | "upright": {"pairs", "seed", "description",
"gap_closed": [v, lo, hi], "layout_as_content": [...], "colours_as_style": [...], "rmse": {style, floor, blend,
reinhard, result}, "per_pair_rmse": {result, style, floor}, "baselines": {"pixel_blend" | "reinhard":
{"gap_closed": [...], "result_minus_baseline_rmse": [...]}}}}, "seconds"}``; read with :func:`read_summary_file`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import fileio
from ..stats.verdicts import mean_interval, paired_interval
from . import groundtruth as G

__all__ = ["SCHEMA", "SUMMARY_FILE", "SETS", "REFERENCES", "CONTENT_FACTORS", "gap_ci", "summarise", "evaluate_set",
           "model_summary", "sweep_configs", "sweep_record", "summary_command", "write_summary", "read_summary_file",
           "summary_lines", "sweep_lines"]

SCHEMA = 1
SUMMARY_FILE = "summary.json"
SETS = {"posed": "content differs in identity and pose", "upright": "content differs in identity only (same pose)"}
REFERENCES = (("style", "style image (nothing)"), ("floor", "reconstructed ideal (floor)"),
              ("blend", "pixel blend 0.7/0.3"), ("reinhard", "Reinhard"))
CONTENT_FACTORS = G.LAYOUT_FACTORS + (G.IDENTITY, G.HAIR)
GAP_BOOT = 2000        # resamples for the gap closed (a ratio of means: a noisier statistic than a mean)


def _gap(r, s, f):
    """The gap closed on the means over pairs, resample by resample (:func:`diffstyle_lab.faces.groundtruth.gap_closed`)."""
    return (s.mean(-1) - r.mean(-1)) / (s.mean(-1) - f.mean(-1))


def gap_ci(res, sty, floor) -> tuple[float, float, float]:
    """Gap closed (ratio of means) and its paired bootstrap interval over pairs (result, style and floor
    resampled together)."""
    return paired_interval(_gap, res, sty, floor, n_boot=GAP_BOOT)


def summarise(name: str, sc: dict, ref: dict, floor: np.ndarray, bg0: np.ndarray | None) -> dict:
    """One row of a sweep: ``sc`` (per-pair scores of :func:`~diffstyle_lab.faces.groundtruth.score`) with
    each mean's interval, the gap closed against ``ref`` (the style image's scores) and ``floor``, and the
    background error relative to γ = 0 (``bg0``, its per-pair background RMSE) when given."""
    row = {"setting": name, "rmse": mean_interval(sc["rmse"]), "ssim": mean_interval(sc["ssim"]),
           "diff_vs_style": mean_interval(ref["rmse"] - sc["rmse"]),
           "gap_closed": gap_ci(sc["rmse"], ref["rmse"], floor),
           "rmse_bg": mean_interval(sc["rmse_bg"]), "rmse_fg": mean_interval(sc["rmse_fg"])}
    for k in CONTENT_FACTORS:
        row[f"{k}_as_content"] = mean_interval(sc[k])
    for k in G.COLOUR_FACTORS:
        row[f"{k}_as_style"] = mean_interval(sc[k])
    layout = np.nanmean(np.stack([sc[k] for k in G.LAYOUT_FACTORS + (G.IDENTITY,)]), 0)
    row["large_footprint_as_content"] = mean_interval(layout)
    colours = np.nanmean(np.stack([sc[k] for k in G.COLOUR_FACTORS]), 0)
    row["colours_as_style"] = mean_interval(colours)
    if bg0 is not None:
        row["bg_error_vs_gamma0"] = float(np.nanmean(sc["rmse_bg"]) / np.nanmean(bg0))
    return row


def evaluate_set(model, cfgs: dict, pairs: int, seed: int, steps: int, pose: bool) -> tuple[list, dict]:
    """Rows (the :data:`REFERENCES` first, then one per config key (t_edit, t_boost, γ)) and the raw per-pair
    scores, on ``pairs`` ground-truth pairs drawn with ``seed`` (``pose``: posed or upright faces)."""
    gt = G.GroundTruthPairs.make(pairs, seed=seed, size=model.sample_size, pose=pose)
    sc = G.transfer_scores(model, gt, cfgs, steps=steps)   # the references ("style", "floor", …) and every config
    ref, floor = sc["style"], sc["floor"]["rmse"]
    rows = [summarise(label, sc[key], ref, floor, None) for key, label in REFERENCES]
    for key in cfgs:
        t_edit, tb, _ = key
        bg0 = sc[(t_edit, tb, 0.0)]["rmse_bg"] if (t_edit, tb, 0.0) in sc else None
        rows.append(summarise(f"t_edit={key[0]} t_boost={key[1]} gamma={key[2]}", sc[key], ref, floor, bg0))
    return rows, sc


def _set_summary(row: dict, sc: dict, key, pairs: int, seed: int, desc: str) -> dict:
    """One pair set of ``summary.json`` from its config's row and the raw scores."""
    floor, style = sc["floor"]["rmse"], sc["style"]["rmse"]
    return {
        "pairs": pairs, "seed": seed, "description": desc,
        "gap_closed": list(row["gap_closed"]), "layout_as_content": list(row["large_footprint_as_content"]),
        "colours_as_style": list(row["colours_as_style"]),
        "rmse": {k: float(np.mean(sc[k]["rmse"])) for k in ("style", "floor", "blend", "reinhard")}
        | {"result": float(np.mean(sc[key]["rmse"]))},
        "per_pair_rmse": {k: [round(float(v), 3) for v in sc[k2]["rmse"]]      # for paired comparisons of models
                          for k, k2 in (("result", key), ("style", "style"), ("floor", "floor"))},
        "baselines": {name_b: {"gap_closed": list(gap_ci(sc[k]["rmse"], style, floor)),
                               "result_minus_baseline_rmse": list(mean_interval(sc[key]["rmse"] - sc[k]["rmse"]))}
                      for name_b, k in (("pixel_blend", "blend"), ("reinhard", "reinhard"))}}


def model_summary(model, path: str, pairs: int, seed: int, steps: int, command: str) -> dict:
    """The machine-readable summary the notebooks read (``<model folder>/summary.json``): both pair sets at
    the model's stored defaults, with the two cheap baselines and paired bootstrap intervals."""
    from ..sampling import InjectionConfig
    cfg = InjectionConfig.for_model(model, steps=steps)
    key = (cfg.t_edit, cfg.t_boost, cfg.gamma)
    out = {"schema": SCHEMA, "model": Path(path).name, "weights_sha256": model.weights_hash, "command": command,
           "settings": {"gamma": cfg.gamma, "t_edit": cfg.t_edit, "t_boost": cfg.t_boost, "calibrate": cfg.calibrate,
                        "omega": cfg.omega, "steps": steps, "method": cfg.method}, "sets": {}}
    for name, desc in SETS.items():
        rows, sc = evaluate_set(model, {key: cfg}, pairs, seed, steps, pose=name == "posed")
        out["sets"][name] = _set_summary(rows[-1], sc, key, pairs, seed, desc)
    return out


def summary_command(model_dir, pairs: int, seed: int, steps: int) -> str:
    """The command line that (re)writes a model folder's summary, recorded in it."""
    return f"python -m training.groundtruth_eval {model_dir} --summary --pairs {pairs} --seed {seed} --steps {steps}"


def write_summary(model, model_dir, pairs: int = 100, seed: int = 90_000, steps: int = 50,
                  started: float | None = None) -> tuple[Path, dict]:
    """Score ``model`` (loaded from ``model_dir``) and write ``model_dir/summary.json`` atomically; returns
    (path, summary). ``started``: the ``time.time()`` its ``seconds`` count from (default: now)."""
    t0 = time.time() if started is None else started
    out = model_summary(model, str(model_dir), pairs, seed, steps, summary_command(model_dir, pairs, seed, steps))
    out["seconds"] = round(time.time() - t0, 1)
    target = Path(model_dir) / SUMMARY_FILE
    fileio.write_json(target, out, indent=1)
    return target, out


def read_summary_file(path) -> dict:
    """A ``summary.json``, strictly (:func:`diffstyle_lab.fileio.read_json`), checked to be schema 1 with
    its pair sets; a one-line ``ValueError`` naming the file otherwise."""
    fix = f"; rewrite it with {summary_command('MODEL_DIR', 100, 90_000, 50)}"
    data = fileio.read_json(path, fix=fix)
    if data.get("schema") != SCHEMA or not isinstance(data.get("sets"), dict):
        raise ValueError(f"{path}: expected a schema-{SCHEMA} summary "
                         f"({{\"schema\": {SCHEMA}, \"sets\": {{...}}, ...}}){fix}")
    return data


def sweep_configs(t_edits, gammas, t_boost: int | None = None, steps: int = 50, method: str = "normalised_slerp",
                  calibrate: bool = False, omega: float = 0.3) -> dict:
    """``{(t_edit, t_boost, γ): InjectionConfig}`` for a sweep; ``t_boost`` defaults to min(200, t_edit) and
    never exceeds t_edit."""
    from ..sampling import InjectionConfig
    cfgs = {}
    for t_edit in t_edits:
        tb = min(200, t_edit) if t_boost is None else min(t_boost, t_edit)
        for g in gammas:
            cfgs[(t_edit, tb, g)] = InjectionConfig(gamma=g, t_edit=t_edit, t_boost=tb, steps=steps, method=method,
                                                    calibrate=calibrate, omega=omega)
    return cfgs


def sweep_record(model, model_dir, cfgs: dict, pairs: int, seed: int, steps: int, upright: bool = False,
                 method: str = "normalised_slerp", calibrate: bool = False, omega: float = 0.3,
                 started: float | None = None) -> dict:
    """Score a sweep (:func:`sweep_configs`) on one pair set: the record ``training/groundtruth_table.py`` reads
    (``started`` as for :func:`write_summary`)."""
    from .. import __version__
    t0 = time.time() if started is None else started
    rows, _ = evaluate_set(model, cfgs, pairs, seed, steps, pose=not upright)
    return {"model": str(model_dir), "weights_sha256": model.weights_hash, "pairs": pairs, "seed": seed,
            "steps": steps, "set": "upright" if upright else "posed", "method": method, "calibrate": calibrate,
            "omega": omega, "seconds": round(time.time() - t0, 1), "rows": rows, "diffstyle_lab": __version__}


def summary_lines(out: dict) -> list[str]:
    """One printed line per pair set of a summary."""
    return [f"{name:8s} gap {r['gap_closed'][0]:+.3f} [{r['gap_closed'][1]:+.3f},{r['gap_closed'][2]:+.3f}]  "
            f"layout {r['layout_as_content'][0]:.2f} colours {r['colours_as_style'][0]:.2f}  "
            f"blend {r['baselines']['pixel_blend']['gap_closed'][0]:+.3f} "
            f"reinhard {r['baselines']['reinhard']['gap_closed'][0]:+.3f}" for name, r in out["sets"].items()]


def sweep_lines(rows: list) -> list[str]:
    """One printed line per setting of a sweep, then one per reference."""
    n = len(REFERENCES)
    return [f"{r['setting']:36s} rmse {r['rmse'][0]:6.2f}  gap {r['gap_closed'][0]:+.3f} "
            f"[{r['gap_closed'][1]:+.3f},{r['gap_closed'][2]:+.3f}]  layout {r['large_footprint_as_content'][0]:.2f} "
            f"colours {r['colours_as_style'][0]:.2f}  bg× {r.get('bg_error_vs_gamma0', float('nan')):.2f}"
            for r in rows[n:]] + \
        [f"{r['setting']:36s} rmse {r['rmse'][0]:6.2f}  gap {r['gap_closed'][0]:+.3f}  "
         f"layout {r['large_footprint_as_content'][0]:.2f} colours {r['colours_as_style'][0]:.2f}" for r in rows[:n]]
