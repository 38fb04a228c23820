"""Convert an original DDPM / SDEdit checkpoint (``.ckpt``) to a diffusers ``UNet2DModel`` folder.

The paper's CelebA-HQ and LSUN models are Ho et al.'s DDPM U-Net in the PyTorch layout of the SDEdit / DDIM /
Asyrp / InjectFusion code (``temb.dense.N``, ``conv_in``, ``down.N.block.M.norm1``, ``down.N.attn.M.q``,
``down.N.downsample.conv``, ``mid.block_1``, ``mid.attn_1``, ``up.N.upsample.conv``, ``norm_out``, ``conv_out``).
``convert(ckpt, out)`` (or ``diffstyle-lab convert CKPT --out OUT``) writes ``OUT/config.json`` +
``OUT/diffusion_pytorch_model.safetensors``, ``OUT/scheduler/`` (linear β 1e-4…0.02, T = 1000 unless told
otherwise) and ``OUT/conversion.json`` (source file, its SHA-256, the inferred architecture, the checks that ran).

Strict and safe: the checkpoint is read with ``torch.load(weights_only=True)`` (or safetensors), so nothing is
unpickled; every tensor must be floating point and finite, every source key used once and every target key
filled once with a matching shape, otherwise a :class:`ConversionError` lists what is missing, unexpected or
mis-shaped; the loaded model must map back to the checkpoint bit for bit and give a finite output
(:func:`check_converted`). That the mapping computes what the original network computes is established by the
tests, against a float64 reimplementation of Ho et al.'s network (tests/reference_ddpm.py), not at run time.

The architecture is inferred from the shapes, except the image size (guessed from the attention level, 16×16
in every published DDPM model, or pass ``sample_size``) and the GroupNorm group count (32; ``norm_num_groups``).
The diffusers config that matches the original maths: ``flip_sin_to_cos=False``, ``freq_shift=1`` (DDPM's
embedding: [sin, cos], frequency exp(−log(10⁴)·k/(half−1))), ``downsample_padding=0`` (DDPM pads right/bottom
by one before its stride-2 convolution), ``norm_eps=1e-6``, one attention head (``attention_head_dim=None``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import torch

from .. import fileio
from ..models import key_report

DDPM_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}


class ConversionError(ValueError):
    """The checkpoint cannot be converted (unreadable, unknown layout, strict mismatch)."""


# -- Reading the checkpoint ---------------------------------------------------------------------

def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def read_checkpoint(path, key: str | None = None, ema: bool = False) -> dict:
    """The U-Net state dict inside ``path`` (``.ckpt``/``.pt``/``.pth`` or ``.safetensors``).

    Accepted containers: a plain state dict (SDEdit, pytorch_diffusion, Asyrp/InjectFusion); a
    list ``[model, optimizer, epoch, step(, ema)]`` as the DDIM training code saves (``ema=True``
    takes the last entry); a dict holding the state dict under ``key`` (auto: ``ema`` if
    ``ema=True``, else ``state_dict`` / ``model`` / ``ema``). A ``module.`` prefix (DataParallel)
    is removed.
    """
    p = Path(path)
    if not p.is_file():
        raise ConversionError(f"{p}: no such checkpoint file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            obj = load_file(str(p))
        except Exception as e:
            raise ConversionError(f"{p}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    else:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ConversionError(
                f"{p}: cannot be read as a weights-only checkpoint ({type(e).__name__}: {msg[:300]}). "
                "diffstyle_lab never unpickles arbitrary objects; if this file holds more than tensors, "
                "extract the state dict on a trusted machine (torch.save(model.state_dict(), …)).") from None
    sd = _pick_state_dict(obj, key, ema, p)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _pick_state_dict(obj, key, ema, p) -> dict:
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            have = sorted(map(str, obj.keys()))[:20] if isinstance(obj, dict) else type(obj).__name__
            raise ConversionError(f"{p}: no entry {key!r} in the checkpoint (top level: {have})")
        obj = obj[key]
        if not _is_state_dict(obj):
            raise ConversionError(f"{p}: entry {key!r} is not a dict of tensors")
        return obj
    if isinstance(obj, (list, tuple)):
        cands = [o for o in obj if _is_state_dict(o)]
        if not cands:
            raise ConversionError(f"{p}: a list of {len(obj)} entries, none of them a state dict")
        if ema and len(cands) < 2:
            raise ConversionError(f"{p}: ema=True but the checkpoint list holds no EMA state dict after the model's")
        return cands[-1] if ema else cands[0]
    if _is_state_dict(obj):
        if ema:
            raise ConversionError(f"{p}: ema=True but the file is a single state dict (already the EMA "
                                  "weights, if it is a released model): convert without ema")
        return obj
    if isinstance(obj, dict):
        order = ("ema", "ema_model", "state_dict", "model") if ema else ("state_dict", "model", "ema")
        for k in order:
            if _is_state_dict(obj.get(k)):
                return obj[k]
        raise ConversionError(f"{p}: no state dict found; top-level keys: {sorted(map(str, obj))[:20]} "
                              "(pass key=… / --key)")
    raise ConversionError(f"{p}: holds a {type(obj).__name__}, not a state dict")


# -- Architecture inference ---------------------------------------------------------------------

def infer_architecture(sd: dict) -> dict:
    """``{ch, ch_mult, num_res_blocks, attn_levels, in_channels, out_ch, temb_ch}`` from shapes.

    Raises :class:`ConversionError` for layouts diffusers' UNet2DModel cannot express (no middle
    block, resampling without convolutions, 3×3 ResNet shortcuts, per-level block counts).
    """
    if any(k.startswith(("input_blocks.", "time_embed.")) for k in sd):
        raise ConversionError("this is a guided-diffusion (ADM/P2) checkpoint (input_blocks.…, time_embed.…): "
                              "diffusers has no U-Net class for that layout (AFHQ-dog / MetFaces models); only "
                              "Ho et al.'s DDPM layout (temb.dense.…, down.…, mid.…, up.…) converts")

    def need(k):
        if k not in sd:
            raise ConversionError(f"not an original DDPM U-Net state dict: key {k!r} is missing "
                                  f"(first keys: {list(sd)[:6]})")
        return sd[k]
    cin = need("conv_in.weight")
    ch, in_channels = int(cin.shape[0]), int(cin.shape[1])
    out_ch = int(need("conv_out.weight").shape[0])
    temb_ch = int(need("temb.dense.0.weight").shape[0])
    need("mid.block_1.conv1.weight")
    need("mid.attn_1.q.weight")
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"down\.(\d+)\.", k))})
    if not levels or levels != list(range(len(levels))):
        raise ConversionError(f"down levels {levels}: expected 0…L−1")
    n_up = sorted({int(m.group(1)) for k in sd if (m := re.match(r"up\.(\d+)\.", k))})
    if n_up != levels:
        raise ConversionError(f"up levels {n_up} do not match down levels {levels}")
    L = len(levels)

    def count(prefix):
        return len({int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))})
    nrb = count("down.0.block.")
    ch_mult, attn_levels = [], []
    for i in levels:
        if count(f"down.{i}.block.") != nrb or count(f"up.{i}.block.") != nrb + 1:
            raise ConversionError(
                f"level {i} has {count(f'down.{i}.block.')} down / {count(f'up.{i}.block.')} up ResNets; "
                f"diffusers needs the same num_res_blocks ({nrb} down, {nrb + 1} up) at every level")
        out = int(need(f"down.{i}.block.0.conv1.weight").shape[0])
        if out % ch:
            raise ConversionError(f"level {i}: {out} channels is not a multiple of ch={ch}")
        ch_mult.append(out // ch)
        na, nu = count(f"down.{i}.attn."), count(f"up.{i}.attn.")
        if (na, nu) == (nrb, nrb + 1):
            attn_levels.append(i)
        elif (na, nu) != (0, 0):
            raise ConversionError(f"level {i} has {na} down / {nu} up attention blocks; expected none or "
                                  f"one per ResNet ({nrb} / {nrb + 1})")
        if i < L - 1 and f"down.{i}.downsample.conv.weight" not in sd:
            raise ConversionError(f"level {i} resamples without a convolution (resamp_with_conv=False): "
                                  "diffusers' UNet2DModel always uses convolutions; not convertible")
    if any(k.endswith("conv_shortcut.weight") for k in sd):
        raise ConversionError("3×3 conv_shortcut ResNets (conv_shortcut=True) have no diffusers "
                              "UNet2DModel equivalent (it uses 1×1 shortcuts)")
    return {"ch": ch, "ch_mult": ch_mult, "num_res_blocks": nrb, "attn_levels": attn_levels,
            "in_channels": in_channels, "out_ch": out_ch, "temb_ch": temb_ch}


def guess_sample_size(arch: dict, attn_resolutions=None) -> int:
    """Image size from the attention levels: DDPM puts attention at 16×16 (``attn_resolutions``
    overrides that), so level l with attention means size = res·2^l."""
    res = list(attn_resolutions) if attn_resolutions else [16]
    lv = arch["attn_levels"]
    if len(lv) != len(res):
        raise ConversionError(
            f"attention at levels {lv} but attn_resolutions={res}: pass sample_size (--sample-size) explicitly")
    sizes = {r * 2 ** level for r, level in zip(sorted(res, reverse=True), lv)}
    if len(sizes) != 1:
        raise ConversionError(f"attention levels {lv} and resolutions {res} disagree; pass sample_size")
    return sizes.pop()


def diffusers_config(arch: dict, sample_size: int, norm_num_groups: int = 32) -> dict:
    """The ``UNet2DModel`` config that computes what the original network computes."""
    L = len(arch["ch_mult"])
    attn = set(arch["attn_levels"])
    chans = [arch["ch"] * m for m in arch["ch_mult"]]
    if arch["temb_ch"] != 4 * arch["ch"]:
        raise ConversionError(f"time embedding width {arch['temb_ch']} ≠ 4·ch={4 * arch['ch']}: "
                              "UNet2DModel's is always 4 × block_out_channels[0]")
    return {
        "sample_size": int(sample_size), "in_channels": arch["in_channels"], "out_channels": arch["out_ch"],
        "layers_per_block": arch["num_res_blocks"], "block_out_channels": chans,
        "down_block_types": ["AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(L)],
        "up_block_types": ["AttnUpBlock2D" if (L - 1 - j) in attn else "UpBlock2D" for j in range(L)],
        "attention_head_dim": None, "norm_num_groups": norm_num_groups, "norm_eps": 1e-6,
        "flip_sin_to_cos": False, "freq_shift": 1, "downsample_padding": 0, "act_fn": "silu",
        "time_embedding_type": "positional", "center_input_sample": False, "mid_block_scale_factor": 1,
        "add_attention": True,
    }


# -- Key mapping --------------------------------------------------------------------------------

_RES = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
        "nin_shortcut": "conv_shortcut"}
_ATT = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def original_key_to_diffusers(key: str, n_levels: int) -> tuple[str, bool] | None:
    """The diffusers key for an original key, and whether the tensor is a 1×1 conv that becomes a
    linear weight; None for a key with no counterpart."""
    m = re.fullmatch(r"temb\.dense\.([01])\.(weight|bias)", key)
    if m:
        return f"time_embedding.linear_{int(m.group(1)) + 1}.{m.group(2)}", False
    m = re.fullmatch(r"(conv_in|conv_out|norm_out)\.(weight|bias)", key)
    if m:
        return f"{'conv_norm_out' if m.group(1) == 'norm_out' else m.group(1)}.{m.group(2)}", False
    m = re.fullmatch(r"(down|up)\.(\d+)\.(.+)", key)
    if m:
        side, level, rest = m.group(1), int(m.group(2)), m.group(3)
        if level >= n_levels:
            return None
        blk = f"down_blocks.{level}" if side == "down" else f"up_blocks.{n_levels - 1 - level}"
        r = re.fullmatch(r"block\.(\d+)\.(\w+)\.(weight|bias)", rest)
        if r and r.group(2) in _RES:
            return f"{blk}.resnets.{r.group(1)}.{_RES[r.group(2)]}.{r.group(3)}", False
        r = re.fullmatch(r"attn\.(\d+)\.(\w+)\.(weight|bias)", rest)
        if r and r.group(2) in _ATT:
            return f"{blk}.attentions.{r.group(1)}.{_ATT[r.group(2)]}.{r.group(3)}", r.group(2) != "norm"
        r = re.fullmatch(r"(downsample|upsample)\.conv\.(weight|bias)", rest)
        if r and (r.group(1) == "downsample") == (side == "down"):
            return f"{blk}.{r.group(1)}rs.0.conv.{r.group(2)}", False
        return None
    m = re.fullmatch(r"mid\.(block_1|block_2|attn_1)\.(\w+)\.(weight|bias)", key)
    if m:
        part, name, wb = m.groups()
        if part == "attn_1":
            return (f"mid_block.attentions.0.{_ATT[name]}.{wb}", name != "norm") if name in _ATT else None
        idx = 0 if part == "block_1" else 1
        return (f"mid_block.resnets.{idx}.{_RES[name]}.{wb}", False) if name in _RES else None
    return None


@functools.lru_cache(maxsize=8)
def _inverse_keys(n_levels: int) -> dict:
    """{diffusers key: (original key, is_linear)}, by running the forward map over every original key
    a U-Net of ``n_levels`` levels can have (up to 4 ResNets / attentions per level)."""
    names = ["temb.dense.0", "temb.dense.1", "conv_in", "conv_out", "norm_out"]
    names += [f"mid.{p}.{r}" for p in ("block_1", "block_2") for r in _RES] + [f"mid.attn_1.{a}" for a in _ATT]
    for side, sample in (("down", "downsample"), ("up", "upsample")):
        for lv in range(n_levels):
            names.append(f"{side}.{lv}.{sample}.conv")
            names += [f"{side}.{lv}.block.{i}.{r}" for i in range(4) for r in _RES]
            names += [f"{side}.{lv}.attn.{i}.{a}" for i in range(4) for a in _ATT]
    keys = (f"{n}.{wb}" for n in names for wb in ("weight", "bias"))
    return {r[0]: (key, r[1]) for key in keys if (r := original_key_to_diffusers(key, n_levels)) is not None}


def map_state_dict(sd: dict, target: dict, n_levels: int) -> dict:
    """Rename ``sd`` (original layout) to the keys of ``target`` (a diffusers state dict),
    strictly: raises :class:`ConversionError` naming unexpected, missing and mis-shaped keys."""
    out, unexpected, shapes, dup, reached = {}, [], [], [], set()
    for k, v in sd.items():
        r = original_key_to_diffusers(k, n_levels)
        if r is None or r[0] not in target:
            unexpected.append(k if r is None else f"{k} (→ {r[0]})")
            continue
        tk, lin = r
        reached.add(tk)
        if lin and v.dim() == 4:
            if tuple(v.shape[2:]) != (1, 1):
                shapes.append(f"{k}: {tuple(v.shape)} is not a 1×1 convolution")
                continue
            v = v[:, :, 0, 0]
        if tuple(v.shape) != tuple(target[tk].shape):
            shapes.append(f"{k} {tuple(v.shape)} → {tk} {tuple(target[tk].shape)}")
            continue
        if tk in out:
            dup.append(tk)
        out[tk] = v
    missing = sorted(set(target) - reached)
    msg = key_report({"unexpected source key(s) (not used)": unexpected, "target key(s) not filled": missing,
                      "shape mismatch(es)": shapes, "target key(s) filled twice": dup}, n=12)
    if msg:
        raise ConversionError("strict conversion failed — " + msg)
    return out


def to_original(unet) -> dict:
    """A diffusers DDPM-layout ``UNet2DModel``'s weights in the original layout (the inverse map;
    attention projections become 1×1 convolutions)."""
    inverse, out = _inverse_keys(len(unet.config.block_out_channels)), {}
    for k, v in unet.state_dict().items():
        r = inverse.get(k)
        if r is None:
            raise ConversionError(f"{k}: no original-layout counterpart")
        ok, conv = r
        out[ok] = v.detach().clone()[:, :, None, None] if conv and v.dim() == 2 else v.detach().clone()
    return out


# -- Checks that need no second network ----------------------------------------------------------

def check_source(sd: dict) -> None:
    """Every tensor of the checkpoint is floating point and finite (else :class:`ConversionError` naming them)."""
    not_float = [f"{k} ({v.dtype})" for k, v in sd.items() if not v.is_floating_point()]
    not_finite = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    msg = key_report({"tensor(s) not floating point": not_float, "tensor(s) holding NaN or ±inf": not_finite}, n=12)
    if msg:
        raise ConversionError(f"the checkpoint's weights are not usable — {msg}")


@torch.no_grad()
def check_converted(sd: dict, unet, seed: int = 0) -> dict:
    """What the conversion checks once the weights are in ``unet`` (the strict key/shape mapping of
    :func:`map_state_dict` has already run): the loaded weights map back to the source bit for bit
    (float32), and a forward pass at t = 10 and 900 on a small random input is finite and of the
    right shape. Numerical equivalence with the original network is checked by the tests
    (tests/reference_ddpm.py), not here. Returns the record written to ``conversion.json``."""
    back = to_original(unet)
    differ = sorted(k for k, v in sd.items() if k not in back or back[k].numel() != v.numel()
                    or not torch.equal(back[k].reshape(v.shape), v.float()))
    if differ or set(back) - set(sd):
        raise ConversionError(f"the converted weights do not map back to the checkpoint: "
                              f"{key_report({'differ': differ, 'extra': set(back) - set(sd)}, n=12)}")
    c = unet.config
    size = 2 * 2 ** (len(c.block_out_channels) - 1)      # a 2×2 map at the deepest level: cheap, same maths
    x = torch.randn(2, c.in_channels, size, size, generator=torch.Generator().manual_seed(seed))
    eps = unet(x.to(unet.dtype), torch.tensor([10, 900])).sample
    if tuple(eps.shape) != (2, c.out_channels, size, size) or not bool(torch.isfinite(eps).all()):
        raise ConversionError(f"the converted model's output at t = 10, 900 is not finite or has shape "
                              f"{tuple(eps.shape)} (expected {(2, c.out_channels, size, size)})")
    return {"tensors": len(sd), "round_trip_exact": True, "forward_finite": True}


# -- The conversion -----------------------------------------------------------------------------

def build_unet(sd: dict, sample_size: int | None = None, norm_num_groups: int = 32, *, ch=None, ch_mult=None,
               num_res_blocks=None, attn_resolutions=None):
    """``(unet, arch, config)``: a diffusers UNet2DModel holding the converted weights (strict).

    ``ch``, ``ch_mult``, ``num_res_blocks`` are checked against the shapes when given;
    ``attn_resolutions`` (e.g. ``(16,)``) is used to derive ``sample_size`` when that is not given.
    """
    from diffusers import UNet2DModel
    arch = infer_architecture(sd)
    for name, want, have in (("ch", ch, arch["ch"]), ("num_res_blocks", num_res_blocks, arch["num_res_blocks"]),
                             ("ch_mult", None if ch_mult is None else list(ch_mult), arch["ch_mult"])):
        if want is not None and want != have:
            raise ConversionError(f"{name}={want} was asked for but the checkpoint's shapes say {have}")
    if sample_size is None:
        sample_size = guess_sample_size(arch, attn_resolutions)
    down = 2 ** (len(arch["ch_mult"]) - 1)
    if not isinstance(sample_size, int) or sample_size <= 0 or sample_size % down:
        raise ConversionError(f"sample_size={sample_size!r} must be a positive multiple of {down} "
                              f"({len(arch['ch_mult'])} levels)")
    cfg = diffusers_config(arch, sample_size, norm_num_groups)
    try:
        unet = UNet2DModel(**cfg)
    except ValueError as e:  # e.g. GroupNorm: channels not divisible by the group count
        raise ConversionError(f"cannot build the UNet2DModel (norm_num_groups={norm_num_groups}?): {e}") from None
    check_source(sd)
    mapped = map_state_dict(sd, unet.state_dict(), len(arch["ch_mult"]))
    unet.load_state_dict({k: v.float() for k, v in mapped.items()}, strict=True)
    return unet.eval().requires_grad_(False), arch, cfg


def convert(ckpt, out, *, sample_size: int | None = None, norm_num_groups: int = 32, key: str | None = None,
            ema: bool = False, ch=None, ch_mult=None, num_res_blocks=None, attn_resolutions=None,
            scheduler: dict | None = None, overwrite: bool = False) -> dict:
    """Convert ``ckpt`` (original DDPM layout) to a diffusers folder ``out``; returns the record
    written to ``out/conversion.json``. Nothing is left in ``out`` when the conversion fails."""
    from diffusers import DDPMScheduler
    ckpt, out = Path(ckpt), Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConversionError(f"{out} exists and is not empty; choose another folder or pass overwrite=True (--force)")
    sd = read_checkpoint(ckpt, key=key, ema=ema)
    unet, arch, cfg = build_unet(sd, sample_size, norm_num_groups, ch=ch, ch_mult=ch_mult,
                                 num_res_blocks=num_res_blocks, attn_resolutions=attn_resolutions)
    checks = check_converted(sd, unet)
    sch = dict(DDPM_SCHEDULER, **(scheduler or {}))
    record = {"source": str(ckpt), "source_sha256": fileio.file_sha256(ckpt), "architecture": arch,
              "sample_size": cfg["sample_size"], "sample_size_inferred": sample_size is None,
              "norm_num_groups": norm_num_groups, "ema": ema, "key": key, "scheduler": sch,
              "checks": checks, "parameters": sum(v.numel() for v in sd.values())}

    def build(tmp):
        unet.save_pretrained(tmp, safe_serialization=True)
        DDPMScheduler(**sch, clip_sample=True).save_pretrained(tmp / "scheduler")
        fileio.write_json(tmp / "conversion.json", record)
    fileio.atomic_dir(out, build)
    return record


# -- Command line: ``diffstyle-lab convert`` (hooked up by cli.py through :func:`register`) -----

def _ints(s: str) -> list[int]:
    try:
        return [int(v) for v in s.replace(" ", "").split(",") if v]
    except ValueError:
        import argparse
        raise argparse.ArgumentTypeError(f"{s!r}: expected comma-separated integers, e.g. 1,1,2,2,4,4") from None


def cmd_convert(a) -> int:
    rec = convert(a.ckpt, a.out, sample_size=a.sample_size, norm_num_groups=a.norm_num_groups, key=a.key,
                  ema=a.ema, ch=a.ch, ch_mult=a.ch_mult, num_res_blocks=a.num_res_blocks,
                  attn_resolutions=a.attn_resolutions, overwrite=a.force,
                  scheduler={"num_train_timesteps": a.timesteps, "beta_start": a.beta_start, "beta_end": a.beta_end})
    if not a.quiet:
        ar = rec["architecture"]
        print(f"converted {a.ckpt} -> {a.out}/ ({rec['parameters'] / 1e6:.1f} M parameters; ch={ar['ch']}, "
              f"ch_mult={ar['ch_mult']}, num_res_blocks={ar['num_res_blocks']}, attention at levels "
              f"{ar['attn_levels']}, sample_size={rec['sample_size']}"
              f"{' (guessed: attention at 16 px)' if rec['sample_size_inferred'] else ''}; "
              f"checked: {rec['checks']['tensors']} tensors mapped one to one, exact round trip, finite output)")
    return 0


def register(subparsers) -> None:
    """Add the ``convert`` sub-command to ``diffstyle-lab``'s sub-parsers."""
    c = subparsers.add_parser("convert", help="convert an original DDPM/SDEdit .ckpt to a diffusers folder")
    c.add_argument("ckpt", help="the original checkpoint (.ckpt/.pt/.pth, or .safetensors)")
    c.add_argument("--out", required=True, help="output folder (usable as --model OUT)")
    c.add_argument("--sample-size", type=int, default=None,
                   help="image size (default: guessed from the attention level, 16 px in DDPM)")
    c.add_argument("--norm-num-groups", type=int, default=32, help="GroupNorm groups (DDPM: 32)")
    c.add_argument("--ch", type=int, default=None, help="check: base channels")
    c.add_argument("--ch-mult", type=_ints, default=None, help="check: channel multipliers, e.g. 1,1,2,2,4,4")
    c.add_argument("--num-res-blocks", type=int, default=None, help="check: ResNets per level")
    c.add_argument("--attn-resolutions", type=_ints, default=None, help="attention resolutions (default 16)")
    c.add_argument("--key", default=None, help="entry of the checkpoint dict that holds the state dict")
    c.add_argument("--ema", action="store_true", help="take the EMA weights of a training checkpoint")
    c.add_argument("--timesteps", type=int, default=1000)
    c.add_argument("--beta-start", type=float, default=1e-4)
    c.add_argument("--beta-end", type=float, default=0.02)
    c.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(fn=cmd_convert)
