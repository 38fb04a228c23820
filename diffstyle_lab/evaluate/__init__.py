"""Evaluation of content injection: per-pair metrics, resumable sweeps, bootstrap intervals, the paper's
claims checked one by one, and scale-out on Dask (README.md, "Evaluation").

The paper's networks (ArcFace identity, VGG Gram, Inception FID) are used where their weights are on disk;
everywhere, content is measured with the factor classifier's content heads (``content_kept``), style with
the colours nearer the style image's (``style_taken``), quality with a Fréchet distance of the classifier's
features. The modules, in the order a run uses them: :mod:`.plan` (settings, sweeps, pairs),
:mod:`.measures` (metric families, Fréchet distance), :mod:`.run` (:func:`evaluate`, the tables),
:mod:`.claims` (summaries, the paper's claims), :mod:`.report` (exported tables, figures, the page). Typical use::

    pairs = ev.PairSet.from_avatars(100, seed=70_000)
    run = ev.evaluate(model, ev.default_plan(), pairs, "runs/evaluation/faces32", steps=50)
    ev.export(run, "docs/results"); ev.build_page("docs/results", "docs/results.md")
"""

from ..stats.bootstrap import bootstrap_ci, bootstrap_indices, paired_difference, trend  # noqa: F401
from .claims import CLAIMS, METRIC_WORDS, SUMMARY_COLUMNS, Claim, assess_claims, metric_summary  # noqa: F401
from .measures import (CONTENT_HEADS, METRICS_VERSION, PAIR_METRIC_FAMILIES, STYLE_HEADS,  # noqa: F401
                       FrechetReference, PairBatch, classifier_columns, factor_columns, frechet_with_ci,
                       image_columns, pair_metrics, paper_columns)
from .plan import (GAMMAS, OMEGAS, SWEPT_FIELDS, T_EDITS, PairSet, PlanEntry, Setting,  # noqa: F401
                   ablation, ablation_names, ablation_rows, default_plan, gamma_sweep, omega_sweep, quick_plan,
                   setting_ids, t_edit_sweep)
from .report import METRIC_NOTES, PAGE_METRICS, PLOT_METRICS, build_page, export, load_exported, plot_sweeps  # noqa
from .run import (BASELINES, Evaluation, classifier_payload, evaluate, load_tables, model_payload,  # noqa: F401
                  parallel_capacity, scaling_demo)

# the names above (not the submodules)
__all__ = [n for n in dir() if not n.startswith("_") and n not in ("claims", "measures", "plan", "report", "run")]
