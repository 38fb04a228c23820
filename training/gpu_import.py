"""Turn what training/gpu_train.py brought back into diffusers model folders.

    python -m training.gpu_import /work/.device/N runs/gpu     # → runs/gpu/<candidate>/{unet,scheduler}, train.json

Each ``<candidate>.safetensors`` (fp16 EMA weights) is loaded into the U-Net that ``gpu_train.json``
describes (strict: every key must match) and exported with the training noise schedule; the run's
record (its candidate config, steps, images seen, loss curve) goes beside it as ``train.json``.
Snapshots (``<candidate>.stepNNNNNN.safetensors``, from ``--snapshot-every``) become ``<candidate>_step<N>``
folders whose ``train.json`` also says ``snapshot_step``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from training import train as T
from diffstyle_lab.fileio import read_json, write_json


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", help="the folder gpu_train.py wrote (gpu_train.json and <candidate>.safetensors)")
    p.add_argument("dest")
    a = p.parse_args(argv)
    src, dest = Path(a.src), Path(a.dest)
    meta_file = src / "gpu_train.json"
    if not meta_file.exists():
        sys.exit(f"gpu_import: {meta_file} is missing: point SRC at the folder gpu_train.py wrote")
    meta = read_json(meta_file, fix="; point SRC at the folder gpu_train.py wrote")
    record = {k: v for k, v in meta.items() if k not in ("candidates", "unet_config", "unet_configs")}
    for name, cfg in meta["candidates"].items():
        weights = src / f"{name}.safetensors"
        if not weights.exists():
            print(f"gpu_import: {weights} missing, skipped")
            continue
        steps = [(int(w.name.split(".step")[1].split(".")[0]), w) for w in sorted(src.glob(f"{name}.step*.safetensors"))]
        found = [(name, weights, {})] + [(f"{name}_step{k}", w, {"snapshot_step": k}) for k, w in steps]
        for folder, w, extra in found:
            unet = T.build_unet(cfg["layout"], cfg["image_size"])
            unet.load_state_dict({k: v.float() for k, v in load_file(str(w)).items()}, strict=True)
            unet.to(torch.float16)
            T.export(unet, dest / folder)
            write_json(dest / folder / "train.json", {"candidate": name, **extra, "config": cfg, **record}, indent=1)
            print(f"{folder}: {dest / folder}")


if __name__ == "__main__":
    main()
