"""Markdown table of ground-truth transfer results written by training/groundtruth_eval.py:

    python -m training.groundtruth_table runs/gt/A.json runs/gt/B.json [--label A --label B]

One row per (file, setting): mean RMSE to the ideal, gap closed with its 95 % paired bootstrap CI,
large-footprint content factors taken from the content image, colours kept from the style image,
background error relative to γ = 0 — then the reference rows of the first file. Intervals are written by
the verdict engine (:func:`diffstyle_lab.stats.verdicts.interval_text`).
"""
import argparse

from diffstyle_lab import fileio
from diffstyle_lab.faces.groundtruth_summary import REFERENCES
from diffstyle_lab.stats.verdicts import interval_text


def fmt(v, d=2):
    return interval_text(*v, digits=d)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--label", action="append", default=[])
    a = p.parse_args(argv)
    labels = a.label + [f for f in a.files[len(a.label):]]
    n_ref = len(REFERENCES)
    print("| model | setting | RMSE to ideal | gap closed [95 % CI] | layout/identity as content | colours as style | bg error ÷ γ=0 |")
    print("|---|---|---|---|---|---|---|")
    refs = None
    for label, f in zip(labels, a.files):
        d = fileio.read_json(f, fix="; expected the --out JSON of training/groundtruth_eval.py")
        refs = refs or (d["rows"][:n_ref], label)
        for r in d["rows"][n_ref:]:
            cal = f", calibration ω={d['omega']}" if d.get("calibrate") else ""
            print(f"| {label} | {r['setting']}{cal} | {r['rmse'][0]:.1f} | {fmt(r['gap_closed'], 3)} | "
                  f"{fmt(r['large_footprint_as_content'])} | {fmt(r['colours_as_style'])} | {r.get('bg_error_vs_gamma0', float('nan')):.2f} |")
    rows, first = refs
    for r in rows:
        print(f"| {first} (reference) | {r['setting']} | {r['rmse'][0]:.1f} | {fmt(r['gap_closed'], 3)} | "
              f"{fmt(r['large_footprint_as_content'])} | {fmt(r['colours_as_style'])} | |")


if __name__ == "__main__":
    main()
