"""Paired comparison of two models scored on the same ground-truth pairs (their ``summary.json``):

    python scripts/compare_summaries.py diffstyle_lab/data/models/faces32/summary.json data/models/faces32_v2/summary.json

Per pair set: each model's gap closed at its stored defaults, and the per-pair difference of RMSE to the
ideal (A − B; negative: A is nearer the ideal) with its 95 % bootstrap interval over pairs. The two
summaries must come from the same pairs (set, seed, count) and steps, else it stops with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from diffstyle_lab.stats.bootstrap import bootstrap_ci  # noqa: E402


def compare(a: dict, b: dict) -> dict:
    out = {}
    for name in a["sets"]:
        sa, sb = a["sets"][name], b["sets"].get(name)
        if sb is None:
            continue
        for k in ("pairs", "seed"):
            if sa[k] != sb[k]:
                raise ValueError(f"set {name!r}: {k} differs ({sa[k]} vs {sb[k]}): not the same pairs")
        if a["settings"]["steps"] != b["settings"]["steps"]:
            raise ValueError(f"steps differ ({a['settings']['steps']} vs {b['settings']['steps']})")
        if "per_pair_rmse" not in sa or "per_pair_rmse" not in sb:
            raise ValueError("a summary without per_pair_rmse: rerun scripts/groundtruth_eval.py MODEL --summary")
        ra, rb = np.array(sa["per_pair_rmse"]["result"]), np.array(sb["per_pair_rmse"]["result"])
        out[name] = {"gap_closed_a": sa["gap_closed"], "gap_closed_b": sb["gap_closed"],
                     "rmse_a_minus_b": list(bootstrap_ci(ra - rb, n_boot=2000)),
                     "a_nearer_share": float((ra < rb).mean())}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    a = p.parse_args(argv)
    try:
        sa, sb = (json.loads(Path(f).read_text()) for f in (a.a, a.b))
        res = compare(sa, sb)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"compare_summaries: {e}")
    for name, r in res.items():
        d = r["rmse_a_minus_b"]
        print(f"{name:8s} gap A {r['gap_closed_a'][0]:+.3f} [{r['gap_closed_a'][1]:+.3f}, {r['gap_closed_a'][2]:+.3f}]  "
              f"B {r['gap_closed_b'][0]:+.3f} [{r['gap_closed_b'][1]:+.3f}, {r['gap_closed_b'][2]:+.3f}]  "
              f"RMSE A−B {d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]  A nearer on {r['a_nearer_share']:.0%} of pairs")


if __name__ == "__main__":
    main()
