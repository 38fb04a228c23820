"""Paired comparison of two models scored on the same ground-truth pairs (their ``summary.json``):

    python -m training.compare_summaries diffstyle_lab/data/models/faces32/summary.json data/models/faces32_v2/summary.json

Per pair set: each model's gap closed at its stored defaults, and the per-pair difference of RMSE to the
ideal (A − B; negative: A is nearer the ideal) with its 95 % paired bootstrap interval over pairs and the
verdict engine's word for it (:func:`diffstyle_lab.stats.verdicts.compare`). The two summaries must come
from the same pairs (set, seed, count) and steps, else it stops with the reason.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from diffstyle_lab.faces.groundtruth_summary import read_summary_file, summary_command
from diffstyle_lab.stats.verdicts import compare as compare_paired, interval_text

N_BOOT = 2000


def compare(a: dict, b: dict) -> dict:
    """Per pair set in both summaries: both gaps closed, RMSE A − B with its interval and verdict word
    (``lower``: A nearer the ideal), and the share of pairs on which A is nearer."""
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
            again = summary_command("MODEL", sa["pairs"], sa["seed"], a["settings"]["steps"])
            raise ValueError(f"a summary without per_pair_rmse: rerun {again}")
        ra, rb = np.array(sa["per_pair_rmse"]["result"]), np.array(sb["per_pair_rmse"]["result"])
        c = compare_paired(ra, rb, n_boot=N_BOOT)
        out[name] = {"gap_closed_a": sa["gap_closed"], "gap_closed_b": sb["gap_closed"],
                     "rmse_a_minus_b": list(c["diff"]), "effect": c["effect"],
                     "a_nearer_share": float((ra < rb).mean())}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    a = p.parse_args(argv)
    try:
        res = compare(read_summary_file(a.a), read_summary_file(a.b))
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"compare_summaries: {e}")
    for name, r in res.items():
        print(f"{name:8s} gap A {interval_text(*r['gap_closed_a'], sign=True)}  "
              f"B {interval_text(*r['gap_closed_b'], sign=True)}  "
              f"RMSE A−B {interval_text(*r['rmse_a_minus_b'], digits=2, sign=True)} ({r['effect']})  "
              f"A nearer on {r['a_nearer_share']:.0%} of pairs")


if __name__ == "__main__":
    main()
