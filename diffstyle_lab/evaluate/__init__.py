"""Evaluation of content injection: per-pair metrics, resumable sweeps, bootstrap intervals, the
paper's claims checked one by one, and scale-out on Dask.

The paper measures content with ArcFace identity similarity, style with a VGG Gram loss and quality
with FID, against γ, t_edit and over an ablation table. Those networks are not reachable on machines
without a model hub, so this package measures with what runs here — and runs the paper's networks too
where their weights are on disk (:mod:`diffstyle_lab.paper_metrics`):

* **content kept** — the factor classifier's content heads (family, hair, eyes, mouth) on the result
  agree with the *content* image's ground truth (only heads where content and style differ count);
* **style taken** — the predicted background/skin/hair colours and the measured border colour of the
  result are nearer (RGB) to the *style* image's than to the content image's;
* generic image metrics for any data: pixel RMSE, SSIM, colour statistics, a Gram-matrix distance on the
  classifier's conv activations, feature cosine, edge correlation — each against content and style;
* **quality** — Fréchet distance of the classifier's features between results and real faces.

The parts, in the order a run uses them:

* :mod:`.plan` — what runs: :class:`Setting` (the swept fields of ``InjectionConfig``), the sweeps, :class:`PairSet`;
* :mod:`.measures` — what is measured per pair (metric families) and per set (Fréchet distance);
* :mod:`.run` — :func:`evaluate`: one resumable block per setting, in-process or on Dask; the tables;
* :mod:`.claims` — metric summaries and the paper's claims judged on them;
* :mod:`.report` — exported tables, figures and the results page.

Intervals everywhere come from :mod:`diffstyle_lab.bootstrap`. Typical use::

    import diffstyle_lab as dl
    from diffstyle_lab import evaluate as ev
    model = dl.load_default_model()
    pairs = ev.PairSet.from_avatars(100, seed=70_000)
    run = ev.evaluate(model, ev.default_plan(), pairs, "runs/evaluation/faces32", steps=50)
    run.tables["pairs"], run.tables["sets"], run.tables["timing"]
    ev.export(run, "docs/results"); ev.build_page("docs/results", "docs/results.md")
"""

from ..bootstrap import bootstrap_ci, bootstrap_indices, paired_difference, trend
from .claims import CLAIMS, METRIC_WORDS, SUMMARY_COLUMNS, Claim, assess_claims, metric_summary
from .measures import (CONTENT_HEADS, METRICS_VERSION, PAIR_METRIC_FAMILIES, STYLE_HEADS, FrechetReference,
                       PairBatch, classifier_columns, factor_columns, frechet_with_ci, image_columns, pair_metrics,
                       paper_columns)
from .plan import (ABLATION_NAMES, GAMMAS, OMEGAS, SWEPT_FIELDS, T_EDITS, PairSet, PlanEntry, Setting, ablation,
                   default_plan, gamma_sweep, omega_sweep, quick_plan, setting_ids, t_edit_sweep)
from .report import METRIC_NOTES, PAGE_METRICS, PLOT_METRICS, build_page, export, load_exported, plot_sweeps
from .run import (BASELINES, Evaluation, classifier_payload, evaluate, load_tables, model_payload,
                  parallel_capacity, scaling_demo)

__all__ = ["Setting", "SWEPT_FIELDS", "PlanEntry", "gamma_sweep", "t_edit_sweep", "omega_sweep", "ablation",
           "default_plan", "quick_plan", "setting_ids", "PairSet", "GAMMAS", "T_EDITS", "OMEGAS", "ABLATION_NAMES",
           "PairBatch", "pair_metrics", "PAIR_METRIC_FAMILIES", "image_columns", "classifier_columns",
           "factor_columns", "paper_columns", "CONTENT_HEADS", "STYLE_HEADS", "METRICS_VERSION", "FrechetReference",
           "frechet_with_ci", "bootstrap_ci", "bootstrap_indices", "paired_difference", "trend", "evaluate",
           "Evaluation", "BASELINES", "load_tables", "model_payload", "classifier_payload", "scaling_demo",
           "parallel_capacity", "metric_summary", "SUMMARY_COLUMNS", "Claim", "CLAIMS", "METRIC_WORDS",
           "assess_claims", "export", "build_page", "load_exported", "plot_sweeps", "PLOT_METRICS", "METRIC_NOTES",
           "PAGE_METRICS"]
