"""The paper's own metrics — ArcFace identity similarity, VGG Gram style distance, Inception FID — as
slots that activate when their network weights are on this machine (``data/weights/`` or an
environment variable per network); without them each raises :class:`MissingWeightsError` saying which
file to put where. Weights load strictly from safetensors or ``torch.load(weights_only=True)``.
The metrics that need no downloaded network are in :mod:`diffstyle_lab.evaluate.metrics`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .metrics import layer_outputs, cosine_similarity, gram_distance


class MissingWeightsError(FileNotFoundError):
    """A paper metric's network weights are not on this machine; the message says which file and where."""


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    metric: str          # what the weights are for
    network: str         # which network
    filename: str        # the usual file name
    env: str             # environment variable that may point to the file
    origin: str          # where people usually get it


PAPER_WEIGHTS = {
    "arcface": WeightsSpec(
        "ArcFace identity similarity (the paper's content/ID metric)",
        "ArcFace IR-SE50 face recogniser (InsightFace_Pytorch by TreB1eN, as used by DiffusionCLIP/Asyrp/InjectFusion)",
        "model_ir_se50.pth", "DIFFSTYLE_LAB_ARCFACE",
        "the 'model_ir_se50.pth' file distributed with TreB1eN/InsightFace_Pytorch "
        "(also shipped by DiffusionCLIP and Asyrp)"),
    "vgg": WeightsSpec(
        "VGG Gram-matrix style loss (the paper's style metric)",
        "VGG-19 (or VGG-16) ImageNet classifier in torchvision's state-dict layout (keys 'features.N.weight')",
        "vgg19-dcbb9e9d.pth", "DIFFSTYLE_LAB_VGG",
        "torchvision's vgg19 ImageNet weights file 'vgg19-dcbb9e9d.pth' (vgg16-397923af.pth also works)"),
    "inception": WeightsSpec(
        "FID (the paper's quality metric)",
        "FID Inception-v3 (the TensorFlow FID network ported to PyTorch by pytorch-fid)",
        "pt_inception-2015-12-05-6726825d.pth", "DIFFSTYLE_LAB_INCEPTION",
        "the 'pt_inception-2015-12-05-6726825d.pth' release file of mseitzer/pytorch-fid"),
}


def weights_dir() -> Path:
    """Where the paper-metric weights are looked for by default: ``<data>/weights`` (``$DIFFSTYLE_LAB_DATA``
    moves ``<data>``)."""
    from ..models import data_dir
    return data_dir() / "weights"


def weights_path(name: str, path=None) -> Path:
    """The weights file of paper metric ``name`` ('arcface' | 'vgg' | 'inception'): ``path`` if given,
    else ``$<ENV>``, else ``<data>/weights/<filename>``. Raises :class:`MissingWeightsError` naming
    exactly the file that is missing and where to put it."""
    if name not in PAPER_WEIGHTS:
        raise ValueError(f"unknown paper metric {name!r}; choose one of {tuple(PAPER_WEIGHTS)}")
    spec = PAPER_WEIGHTS[name]
    if path is not None:
        p, how = Path(path).expanduser(), "the path you passed"
    elif os.environ.get(spec.env):
        p, how = Path(os.environ[spec.env]).expanduser(), f"${spec.env}"
    else:
        p, how = weights_dir() / spec.filename, "the default location"
    if p.is_file():
        return p
    default = weights_dir() / spec.filename
    raise MissingWeightsError(
        f"{spec.metric} is not available: the weights file {p} ({how}) does not exist.\n"
        f"  needs: {spec.network}\n"
        f"  file:  {spec.origin}\n"
        f"  put it at {default}, or set {spec.env}=/path/to/{spec.filename} "
        f"(or pass its path). A .safetensors file with the same keys works too.\n"
        f"  It is read with safetensors or torch.load(weights_only=True): nothing is unpickled.")


def paper_metric_status(paths: dict | None = None) -> dict[str, dict]:
    """``{name: {"available": bool, "path": str | None, "message": str}}`` for the three paper metrics."""
    out = {}
    for name in PAPER_WEIGHTS:
        try:
            p = weights_path(name, (paths or {}).get(name))
            out[name] = {"available": True, "path": str(p), "message": f"using {p}"}
        except MissingWeightsError as e:
            out[name] = {"available": False, "path": None, "message": str(e)}
    return out


def load_state_dict_file(path) -> dict:
    """A state dict from ``.safetensors`` or a plain torch file loaded with ``weights_only=True``.
    Common wrappers (``{"state_dict": …}``, ``{"model": …}``) and ``module.`` prefixes are unwrapped."""
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file
        sd = load_file(str(p))
    else:
        try:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{p}: cannot be read as a plain tensor file with torch.load(weights_only=True) "
                             f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); convert it to "
                             "a state dict of tensors (or .safetensors)") from None
    for k in ("state_dict", "model", "net"):
        if isinstance(sd, dict) and k in sd and isinstance(sd[k], dict):
            sd = sd[k]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ValueError(f"{p}: expected a state dict of tensors")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _load_strict(module: nn.Module, sd: dict, path, name: str, ignore_prefixes=()) -> nn.Module:
    sd = {k: v for k, v in sd.items() if not k.startswith(tuple(ignore_prefixes))}
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} does not match the {PAPER_WEIGHTS[name].network} layout (strict loading): "
                         f"{str(e).splitlines()[0]} … — is this {PAPER_WEIGHTS[name].filename}?") from None
    return module.eval().requires_grad_(False)


# -- ArcFace IR-SE50 --------------------------------------------------------------------------

class _SE(nn.Module):
    def __init__(self, c, r=16):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1, bias=False)
        self.fc2 = nn.Conv2d(c // r, c, 1, bias=False)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class _BottleneckIRSE(nn.Module):
    def __init__(self, cin, depth, stride):
        super().__init__()
        self.shortcut_layer = (nn.MaxPool2d(1, stride) if cin == depth else
                               nn.Sequential(nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth), _SE(depth, 16))

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE50(nn.Module):
    """ArcFace IR-SE50 backbone (112×112 input, 512-D L2-normalised embedding)."""

    def __init__(self):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for cin, depth, n in ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)):
            units.append(_BottleneckIRSE(cin, depth, 2))
            units += [_BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(0.6), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512))

    def forward(self, x):
        e = self.output_layer(self.body(self.input_layer(x)))
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)


class ArcFaceIdentity:
    """The paper's identity similarity: cosine of ArcFace embeddings (1 = same identity).

    Preprocessing as DiffusionCLIP/Asyrp's ID loss: resize to 256, crop [35:223, 32:220], pool to 112.
    """

    name = "arcface"

    def __init__(self, weights=None):
        self.path = weights_path("arcface", weights)
        self.net = _load_strict(IRSE50(), load_state_dict_file(self.path), self.path, "arcface")

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[-1] != 256:
            x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        x = F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112))
        return self.net(x)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return cosine_similarity(self.embed(a), self.embed(b))


def arcface_identity(a: torch.Tensor, b: torch.Tensor, weights=None) -> torch.Tensor:
    """ArcFace identity similarity per image pair (needs ``model_ir_se50.pth``; see :func:`weights_path`)."""
    return ArcFaceIdentity(weights).similarity(a, b)


# -- VGG Gram ---------------------------------------------------------------------------------

class VGGFeatures(nn.Module):
    """torchvision's VGG ``features`` stack, built from the conv layers present in a state dict
    (VGG-16 or VGG-19 without batch norm), returning the relu*_1 activations (Gatys' style layers)."""

    def __init__(self, conv_shapes: dict[int, tuple[int, int]]):
        super().__init__()
        idx = sorted(conv_shapes)
        self.features, self.taps = nn.Sequential(), []
        for n, i in enumerate(idx):
            cout, cin = conv_shapes[i]
            if n == 0 or i - idx[n - 1] == 3:          # the first conv after a max-pool starts a block
                self.taps.append(i + 1)
            self.features.add_module(str(i), nn.Conv2d(cin, cout, 3, padding=1))
            self.features.add_module(str(i + 1), nn.ReLU(inplace=False))
            if n + 1 < len(idx) and idx[n + 1] - i == 3:
                self.features.add_module(str(i + 2), nn.MaxPool2d(2, 2))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return layer_outputs(self.features, ((x + 1) / 2 - self.mean) / self.std, self.taps)


class VGGGram:
    """The paper's style loss: Gram-matrix distance on VGG relu1_1…relu5_1, images resized to ``size``."""

    name = "vgg"

    def __init__(self, weights=None, size: int = 256):
        self.path = weights_path("vgg", weights)
        sd = load_state_dict_file(self.path)
        shapes = {int(k.split(".")[1]): tuple(v.shape[:2]) for k, v in sd.items()
                  if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4}
        if len(shapes) not in (13, 16):
            raise ValueError(f"{self.path}: found {len(shapes)} conv layers under 'features.'; expected VGG-16 (13) "
                             "or VGG-19 (16) in torchvision's layout")
        self.size = size
        self.net = _load_strict(VGGFeatures(shapes), sd, self.path, "vgg", ignore_prefixes=("classifier.",))

    @torch.no_grad()
    def features(self, x):
        x = x.float()
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)

    def distance(self, a, b):
        return gram_distance(self.features(a), self.features(b))


def vgg_gram_distance(a: torch.Tensor, b: torch.Tensor, weights=None) -> torch.Tensor:
    """VGG Gram-matrix style distance per image pair (needs a torchvision VGG file; see :func:`weights_path`)."""
    return VGGGram(weights).distance(a, b)


# -- FID Inception-v3 -------------------------------------------------------------------------

class _BasicConv(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg3(x):
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class _InceptionA(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.branch1x1 = _BasicConv(cin, 64, kernel_size=1)
        self.branch5x5_1 = _BasicConv(cin, 48, kernel_size=1)
        self.branch5x5_2 = _BasicConv(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = _BasicConv(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = _BasicConv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _BasicConv(96, 96, kernel_size=3, padding=1)
        self.branch_pool = _BasicConv(cin, pool, kernel_size=1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg3(x))], 1)


class _InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = _BasicConv(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = _BasicConv(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = _BasicConv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _BasicConv(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, 2)], 1)


class _InceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = _BasicConv(cin, 192, kernel_size=1)
        self.branch7x7_1 = _BasicConv(cin, c7, kernel_size=1)
        self.branch7x7_2 = _BasicConv(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = _BasicConv(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _BasicConv(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = _BasicConv(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _BasicConv(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _BasicConv(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _BasicConv(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = _BasicConv(cin, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for m in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = m(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], 1)


class _InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = _BasicConv(cin, 192, kernel_size=1)
        self.branch3x3_2 = _BasicConv(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = _BasicConv(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = _BasicConv(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _BasicConv(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _BasicConv(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, 2)], 1)


class _InceptionE(nn.Module):
    def __init__(self, cin, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _BasicConv(cin, 320, kernel_size=1)
        self.branch3x3_1 = _BasicConv(cin, 384, kernel_size=1)
        self.branch3x3_2a = _BasicConv(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = _BasicConv(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _BasicConv(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = _BasicConv(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = _BasicConv(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _BasicConv(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = _BasicConv(cin, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg3(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pool)], 1)


class FIDInception(nn.Module):
    """The FID Inception-v3 (pytorch-fid's port of the TF graph): 2048-D pool features of 299×299 input."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _BasicConv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = _BasicConv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = _BasicConv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = _BasicConv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = _BasicConv(80, 192, kernel_size=3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = _InceptionA(192, 32), _InceptionA(256, 64), _InceptionA(288, 64)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b = _InceptionC(768, 128)
        self.Mixed_6c, self.Mixed_6d = _InceptionC(768, 160), _InceptionC(768, 160)
        self.Mixed_6e = _InceptionC(768, 192)
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = _InceptionE(1280, False), _InceptionE(2048, True)

    def forward(self, x):
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, 2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, 2)
        for m in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                  self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = m(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class InceptionFID:
    """The paper's FID: Fréchet distance of FID-Inception pool features (images in [−1, 1])."""

    name = "inception"

    def __init__(self, weights=None):
        self.path = weights_path("inception", weights)
        self.net = _load_strict(FIDInception(), load_state_dict_file(self.path), self.path, "inception",
                                ignore_prefixes=("fc.", "AuxLogits."))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 50) -> torch.Tensor:
        return torch.cat([self.net(x[i:i + batch]) for i in range(0, len(x), batch)])

    def fid(self, a: torch.Tensor, b: torch.Tensor) -> float:
        from ..faces.factors import frechet_distance
        return frechet_distance(self.features(a), self.features(b))


def inception_fid(a: torch.Tensor, b: torch.Tensor, weights=None) -> float:
    """FID between two image sets (needs pytorch-fid's Inception file; see :func:`weights_path`)."""
    return InceptionFID(weights).fid(a, b)
