"""Rebuild docs/results.md and its figures from the evaluation tables (no model, no sampling):

    python scripts/build_results.py [--tables docs/results] [--page docs/results.md]

Every verdict and sentence on the page is generated from the numbers in the tables
(diffstyle_lab.evaluate.assess_claims); scripts/run_evaluation.py writes the tables.
"""
import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--page", default=str(ROOT / "docs" / "results.md"))
    ap.add_argument("--n-boot", type=int, default=1000)
    a = ap.parse_args(argv)
    from diffstyle_lab import evaluate as ev
    print(ev.build_page(a.tables, a.page, n_boot=a.n_boot))


if __name__ == "__main__":
    main()
