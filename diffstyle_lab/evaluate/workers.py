"""What an evaluation ships to Dask workers and what runs there: the model, the classifier and the mixing rules
as payloads (rebuilt once per worker process), and the unit of work, one setting on a chunk of pairs
(:func:`run_chunk`, also what the in-process run calls). :mod:`.run` orchestrates."""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from .. import maths
from ..fileio import sha256_hex
from ..sampling import reverse
from .measures import pair_metrics
from .paper_metrics import ArcFaceIdentity, InceptionFID, VGGGram
from .plan import PairSet, Setting


# ---------------------------------------------------------------------------------------------
# Payloads: picklable descriptions of the objects a worker needs

def _state_bytes(module) -> bytes:
    from safetensors.torch import save
    return save({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})


def model_payload(model) -> dict:
    """A picklable description of a :class:`~diffstyle_lab.DiffusionModel` (config + safetensors bytes)."""
    unet = model.unet
    return {"kind": "diffusion", "class": type(unet).__name__, "config": dict(unet.config),
            "weights": _state_bytes(unet), "scheduler": dict(model.scheduler_config), "source": model.source,
            "revision": model.revision, "hash": model.weights_hash}


def classifier_payload(net) -> dict:
    weights = _state_bytes(net)
    return {"kind": "classifier", "space": net.space, "width": int(net.body[0].weight.shape[0]),
            "weights": weights, "hash": sha256_hex(weights)}


def worker_context(ctx: dict, settings) -> dict:
    """The run's context as the workers get it: the model and the classifier as payloads, and the mixing rules
    the ``settings`` use (:func:`~diffstyle_lab.maths.mix_rules_payload`): a rule registered in the client
    (a notebook, a test) runs on workers that never saw it registered."""
    clf = ctx["classifier"]
    return dict(ctx, model=model_payload(ctx["model"]), classifier=classifier_payload(clf) if clf is not None else None,
                mix_rules=maths.mix_rules_payload(s.method for s in settings))


_LOADED: dict = {}


def _resolve(obj):
    """A payload becomes the object it describes (once per worker process); objects pass through."""
    if not isinstance(obj, dict) or "kind" not in obj:
        return obj
    key = (obj["kind"], obj["hash"])
    if key in _LOADED:
        return _LOADED[key]
    from safetensors.torch import load
    if obj["kind"] == "diffusion":
        import diffusers
        from ..models import DiffusionModel, alphas_cumprod_from_config
        state = load(obj["weights"])
        unet = getattr(diffusers, obj["class"]).from_config(obj["config"]).to(next(iter(state.values())).dtype)
        unet.load_state_dict(state, strict=True)
        unet = unet.eval().requires_grad_(False)
        out = DiffusionModel(unet, alphas_cumprod_from_config(obj["scheduler"]), obj["scheduler"], obj["source"],
                             obj["revision"])
        if out.weights_hash != obj["hash"]:
            raise RuntimeError("the model rebuilt on a worker does not hash like the one shipped")
    else:
        from ..faces.factors import FactorNet
        out = FactorNet(obj["space"], width=obj["width"])
        out.load_state_dict(load(obj["weights"]), strict=True)
        out = out.eval().requires_grad_(False)
    _LOADED.clear() if len(_LOADED) > 8 else None
    _LOADED[key] = out
    return out


def paper_nets(paths: dict) -> dict:
    """The paper's networks of ``paths`` (name → weights file), loaded once per process."""
    key = ("paper", json.dumps(paths, sort_keys=True))
    if key not in _LOADED:
        _LOADED[key] = {k: net(paths[k]) for k, net in (("arcface", ArcFaceIdentity), ("vgg", VGGGram),
                                                        ("inception", InceptionFID)) if k in paths}
    return _LOADED[key]


# ---------------------------------------------------------------------------------------------
# The unit of work

def uint8(x: torch.Tensor) -> np.ndarray:
    """N×3×H×W in [−1, 1] → N×H×W×3 uint8, as the images are saved."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def measure(y, pairs: PairSet, idx: list[int], clf, nets: dict, families) -> dict:
    """A part of a block: the per-pair rows and the features of results ``y``, made from pairs ``idx``."""
    ii = torch.as_tensor(idx)
    cf, sf = ([f[i] for i in idx] if f is not None else None for f in (pairs.content_factors, pairs.style_factors))
    rows = pair_metrics(y, pairs.content[ii], pairs.style[ii], clf, cf, sf,
                        {k: v for k, v in nets.items() if k != "inception"}, families)
    rows["pair"] = idx
    out = {"rows": rows, "features": clf.features(y).double().numpy() if clf is not None else None}
    if "inception" in nets:
        out["inception"] = nets["inception"].features(y).double().numpy()
    return out


def run_chunk(ctx: dict, setting: Setting, idx: list[int], threads: int | None = None) -> dict:
    """One unit of work: a setting on a chunk of pairs (in this process or on a Dask worker)."""
    if threads:
        torch.set_num_threads(int(threads))
    if ctx.get("mix_rules"):
        maths.install_mix_rules(ctx["mix_rules"])           # before the setting's config names its rule
    model, clf, nets = _resolve(ctx["model"]), _resolve(ctx["classifier"]), paper_nets(ctx["paper"])
    cfg = setting.config(**ctx["fixed"])
    ii = torch.as_tensor(idx)
    t0 = time.perf_counter()
    # per-pair boosting noise (seed + pair index): a pair's result does not depend on its chunk
    y = reverse(model, ctx["style_x_T"][ii], ctx["content_inv"].select(ii), cfg, progress=False,
                sample_seeds=[ctx["seed"] + i for i in idx]).float().cpu()
    y = y.clamp(-1, 1)                  # metrics see the image as it would be saved
    t1 = time.perf_counter()
    out = measure(y, ctx["pairs"], idx, clf, nets, ctx["families"])
    out.update(idx=list(idx), images=uint8(y), seconds={"injection": t1 - t0, "metrics": time.perf_counter() - t1})
    return out


def dask_client(scheduler, n_workers: int, threads_per_worker: int):
    """``(client, cluster or None)`` for ``scheduler``: a Client as it is, ``"local"`` a fresh LocalCluster of
    worker processes, an address that cluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise ImportError("running on Dask needs the scale extra: pip install 'diffstyle_lab[scale]' "
                          "(dask[distributed])") from e
    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler in ("local", True):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=None)
        return Client(cluster), cluster
    return Client(scheduler), None
