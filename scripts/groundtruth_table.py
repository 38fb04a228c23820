"""Markdown table of ground-truth transfer results written by scripts/groundtruth_eval.py:

    python scripts/groundtruth_table.py runs/gt/A.json runs/gt/B.json [--label A --label B]

One row per (file, setting): mean RMSE to the ideal, gap closed with its 95 % paired bootstrap CI,
large-footprint content factors taken from the content image, colours kept from the style image,
background error relative to γ = 0 — then the reference rows of the first file.
"""
import argparse
import json


def fmt(v, d=2):
    return f"{v[0]:.{d}f} [{v[1]:.{d}f}, {v[2]:.{d}f}]"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--label", action="append", default=[])
    a = p.parse_args(argv)
    labels = a.label + [f for f in a.files[len(a.label):]]
    print("| model | setting | RMSE to ideal | gap closed [95 % CI] | layout/identity as content | colours as style | bg error ÷ γ=0 |")
    print("|---|---|---|---|---|---|---|")
    refs = None
    for label, f in zip(labels, a.files):
        d = json.load(open(f))
        refs = refs or (d["rows"][:4], label)
        for r in d["rows"][4:]:
            cal = f", calibration ω={d['omega']}" if d.get("calibrate") else ""
            print(f"| {label} | {r['setting']}{cal} | {r['rmse'][0]:.1f} | {fmt(r['gap_closed'], 3)} | "
                  f"{fmt(r['large_footprint_as_content'])} | {fmt(r['colours_as_style'])} | {r.get('bg_error_vs_gamma0', float('nan')):.2f} |")
    rows, first = refs
    for r in rows:
        print(f"| {first} (reference) | {r['setting']} | {r['rmse'][0]:.1f} | {fmt(r['gap_closed'], 3)} | "
              f"{fmt(r['large_footprint_as_content'])} | {fmt(r['colours_as_style'])} | |")


if __name__ == "__main__":
    main()
