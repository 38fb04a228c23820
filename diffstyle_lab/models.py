"""Model access: the embedded default model, local diffusers folders, pinned hub checkpoints,
tiny random U-Nets for tests and the 256-px DDPM layout for shape and speed tests.

Weights are read from safetensors (or, for legacy files, ``torch.load(weights_only=True)``) and
loaded **strictly**: a checkpoint that does not match the configuration is an error, never a
silently half-initialised model (the authors' code loads with ``strict=False``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from .config import InjectionConfig
from .fileio import read_json, sha256_hex, tensor_bytes
from .hooks import HookedUNet

DEFAULT_MODEL = "faces32"

# Known hub checkpoints: the paper's CelebA-HQ and LSUN models in diffusers format.
# ``revision`` pins what is loaded; "main" is used only where no commit has been verified from
# this project's machines (which cannot reach the hub) — override it with ``revision=``.
_PAPER_DEFAULTS = {"t_edit": 400, "t_boost": 200, "gamma": 0.3, "omega": 0.3}
KNOWN_MODELS = {
    "google/ddpm-ema-celebahq-256": {"revision": "main", "domain": "faces (CelebA-HQ)", "defaults": _PAPER_DEFAULTS},
    "google/ddpm-ema-church-256": {"revision": "main", "domain": "LSUN church", "defaults": _PAPER_DEFAULTS},
    "google/ddpm-ema-bedroom-256": {"revision": "main", "domain": "LSUN bedroom", "defaults": _PAPER_DEFAULTS},
}


class ModelUnavailableError(OSError):
    """The model cannot be loaded here (hub unreachable and nothing cached)."""


@dataclasses.dataclass
class DiffusionModel:
    """A U-Net (with hook points), its noise schedule and where it came from.

    ``alphas_cumprod`` is ᾱ_t for t = 0…T−1 (float64), computed from the model's own scheduler config.
    """

    unet: torch.nn.Module
    alphas_cumprod: torch.Tensor
    scheduler_config: dict
    source: str
    revision: str | None = None
    _weights_hash: str | None = None
    defaults: dict = dataclasses.field(default_factory=dict)
    """Per-model injection defaults (``InjectionConfig`` fields, e.g. ``{"t_edit": 500}``): from the
    folder's ``diffstyle_lab.json`` or ``KNOWN_MODELS[id]["defaults"]``; applied by
    ``InjectionConfig.for_model(model)``. Empty: the package defaults."""
    generation: dict = dataclasses.field(default_factory=dict)
    """Per-model settings of :func:`~diffstyle_lab.sampling.sample` from pure noise (``{"clip_x0": true, "eta": 1.0,
    "steps": 100}``): from the folder's ``diffstyle_lab.json`` (``generation_defaults``). Empty: the paper's sampler
    (clip_x0 off, η 0, 50 steps)."""

    def __post_init__(self):
        self.hooked = HookedUNet(self.unet)

    @property
    def T(self) -> int:
        return len(self.alphas_cumprod)

    @property
    def sample_size(self) -> int:
        s = self.unet.config.sample_size
        return s if isinstance(s, int) else s[0]

    @property
    def in_channels(self) -> int:
        return self.unet.config.in_channels

    @property
    def device(self):
        return self.hooked.device

    def to(self, device=None, dtype=None):
        """Move (and optionally cast, e.g. ``dtype=torch.float64`` for exact comparisons) the U-Net."""
        self.unet.to(device=device, dtype=dtype)
        if dtype is not None:
            self._weights_hash = None
        return self

    @property
    def weights_hash(self) -> str:
        """SHA-256 of all parameters and buffers (names, shapes, dtypes, bytes); computed once."""
        if self._weights_hash is None:
            sd = self.unet.state_dict()
            self._weights_hash = sha256_hex((f"{k}|{tuple(v.shape)}|{v.dtype}", tensor_bytes(v)) for k, v in sorted(sd.items()))
        return self._weights_hash

    def describe(self) -> dict:
        return {"source": self.source, "revision": self.revision, "weights_sha256": self.weights_hash,
                "class": type(self.unet).__name__, "sample_size": self.sample_size,
                "injection_defaults": dict(self.defaults), "generation_defaults": dict(self.generation),
                "scheduler": {k: self.scheduler_config.get(k) for k in
                              ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")}}


BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "laplace")


def alphas_cumprod_from_config(cfg: dict) -> torch.Tensor:
    """ᾱ_t from a diffusers scheduler config (``BETA_SCHEDULES`` or ``trained_betas``), float64."""
    from diffusers import DDPMScheduler
    keep = {k: cfg[k] for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")
            if k in cfg and cfg[k] is not None}
    if keep.get("trained_betas") is None and keep.get("beta_schedule", "linear") not in BETA_SCHEDULES:
        raise ValueError(f"beta_schedule={keep['beta_schedule']!r} is unknown; choose one of {BETA_SCHEDULES} "
                         "or give trained_betas")
    try:
        sch = DDPMScheduler(**keep)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"scheduler config {keep} is not usable ({type(e).__name__}: {e})") from None
    betas = sch.betas.double()
    return torch.cumprod(1 - betas, 0)


DEFAULT_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}


def package_data_dir() -> Path:
    """The data that ships inside the package (and its wheel): the default model, the factor classifier
    and the sample faces (``diffstyle_lab/data/``)."""
    return Path(__file__).resolve().parent / "data"


def data_dir() -> Path:
    """The checkout's ``data/`` folder: the data sets that do not ship in the wheel (out-of-domain images,
    other models, paper-metric weights); ``$DIFFSTYLE_LAB_DATA`` overrides."""
    env = os.environ.get("DIFFSTYLE_LAB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data"


def data_path(*parts) -> Path:
    """``parts`` under :func:`data_dir` where that exists, else under :func:`package_data_dir` (the
    shipped copy): a folder given by ``$DIFFSTYLE_LAB_DATA`` can override a shipped file or model."""
    p = data_dir().joinpath(*parts)
    return p if p.exists() else package_data_dir().joinpath(*parts)


def default_model_path(name: str = DEFAULT_MODEL) -> Path:
    return data_path("models", name)


def load_default_model(name: str = DEFAULT_MODEL, device="cpu") -> DiffusionModel:
    """The small face model the project trains and ships in the package (``diffstyle_lab/data/models/<name>``)."""
    p = default_model_path(name)
    if not (p / "unet").is_dir():
        raise FileNotFoundError(
            f"the model {name!r} is neither in the package nor in a data folder ({p}): reinstall diffstyle_lab, "
            f"set DIFFSTYLE_LAB_DATA to a folder holding models/{name}, or, in a checkout, train one with "
            "`python -m training.train --out DIR`")
    return load_model(p, device=device, source=f"diffstyle_lab:{name}")


# ---------------------------------------------------------------------------------------------

def _read_state_dict(folder: Path) -> dict:
    st = folder / "diffusion_pytorch_model.safetensors"
    if st.exists():
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(st))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{st}: not a readable safetensors file ({str(e).splitlines()[0][:120]}): truncated or "
                             "corrupt; download or export the weights again") from None
    legacy = folder / "diffusion_pytorch_model.bin"
    if legacy.exists():
        import pickle
        try:
            return torch.load(str(legacy), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as e:
            # torch's message suggests weights_only=False, which would run the file's code: never
            raise ValueError(f"{legacy}: not a plain tensor checkpoint ({type(e).__name__}); it holds other "
                             "pickled objects, which diffstyle_lab never unpickles; convert it to safetensors "
                             "where you trust the file, or use a safetensors checkpoint") from None
    raise FileNotFoundError(f"no weights in {folder}: expected diffusion_pytorch_model.safetensors")


def key_report(groups: dict, n: int = 3) -> str:
    """``label: k1, k2, … (N in all)`` for each non-empty group of keys, joined by "; " (strict-load errors)."""
    return "; ".join(f"{label}: " + ", ".join(sorted(keys)[:n]) + (f", … ({len(keys)} in all)" if len(keys) > n else "")
                     for label, keys in groups.items() if keys)


def _strict_mismatch(unet, sd: dict) -> str:
    """Which keys a state dict lacks, has in excess or holds with other shapes, against ``unet``."""
    want = unet.state_dict()
    shapes = [f"{k} ({tuple(sd[k].shape)} in the file, {tuple(want[k].shape)} in the model)"
              for k in set(want) & set(sd) if tuple(want[k].shape) != tuple(sd[k].shape)]
    return key_report({"missing keys": set(want) - set(sd), "unexpected keys": set(sd) - set(want),
                       "other shapes": shapes}) or "keys and shapes agree"


def load_unet_folder(folder, dtype=torch.float32):
    """Build a U-Net from ``folder/config.json`` and load its weights strictly (finite values only)."""
    from diffusers import UNet2DConditionModel, UNet2DModel
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{folder} is not a diffusers U-Net folder (no config.json)")
    cfg = read_json(cfg_path, "; it should be the diffusers U-Net config saved with the weights")
    cls = {"UNet2DModel": UNet2DModel, "UNet2DConditionModel": UNet2DConditionModel}.get(cfg.get("_class_name"))
    if cls is None:
        raise ValueError(f"{cfg_path}: _class_name={cfg.get('_class_name')!r}; diffstyle_lab loads "
                         "UNet2DModel and UNet2DConditionModel")
    try:
        unet = cls.from_config(cfg)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ValueError(f"{cfg_path}: diffusers cannot build a {cls.__name__} from it ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    sd = _read_state_dict(folder)
    try:
        unet.load_state_dict(sd, strict=True)
    except RuntimeError:
        raise ValueError(f"the weights in {folder} do not match its config.json (strict loading): "
                         f"{_strict_mismatch(unet, sd)} — is this the right checkpoint?") from None
    for name, v in sd.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{folder}: weight {name} holds NaN or inf values; the checkpoint is broken "
                             "(a diverged training run?): use an earlier checkpoint")
    if dtype != torch.float32:
        unet = unet.to(dtype)
    return unet.eval().requires_grad_(False)


def _scheduler_config(root: Path) -> dict:
    for p in (root / "scheduler" / "scheduler_config.json", root / "scheduler_config.json"):
        if p.exists():
            cfg = read_json(p, "; it should be the diffusers scheduler config")
            try:
                alphas_cumprod_from_config(cfg)
            except ValueError as e:
                raise ValueError(f"{p}: {e}") from None
            return cfg
    return dict(DEFAULT_SCHEDULER)


def load_model(id_or_dir, revision: str | None = None, device="cpu", dtype=torch.float32,
               local_files_only: bool | None = None, source: str | None = None) -> DiffusionModel:
    """Load a diffusers model from a local folder or a hub id (``revision`` pinned).

    A folder may be a pipeline folder (with ``unet/`` and ``scheduler/``) or a bare U-Net folder.
    Hub ids resolve through the local Hugging Face cache first; when the hub cannot be reached and
    nothing is cached the error says what to fetch on a connected machine.
    """
    path = Path(str(id_or_dir)).expanduser()
    if path.exists():
        root, rev = path, None
    else:
        if str(id_or_dir).startswith((".", "/", "~")) or os.sep in str(id_or_dir) and str(id_or_dir).count("/") > 1:
            raise FileNotFoundError(f"model folder {id_or_dir} does not exist")
        rev = revision or KNOWN_MODELS.get(str(id_or_dir), {}).get("revision", "main")
        root = hub_snapshot(str(id_or_dir), rev, local_files_only)
    unet_dir = root / "unet" if (root / "unet").is_dir() else root
    defaults = read_model_defaults(root) if (root / MODEL_DEFAULTS_FILE).is_file() else \
        dict(KNOWN_MODELS.get(str(id_or_dir), {}).get("defaults", {}))
    generation = read_generation_defaults(root) if (root / MODEL_DEFAULTS_FILE).is_file() else {}
    unet = load_unet_folder(unet_dir, dtype=dtype).to(device)
    cfg = _scheduler_config(root)
    return DiffusionModel(unet, alphas_cumprod_from_config(cfg), cfg, source or str(id_or_dir), rev,
                          defaults=defaults, generation=generation)


MODEL_DEFAULTS_FILE = "diffstyle_lab.json"


MODEL_DEFAULTS_KEYS = {"injection_defaults", "generation_defaults", "comment"}
# The settings of sample() from pure noise: name -> (type, the paper's value when a folder stores none, range)
GENERATION_SETTINGS = {"clip_x0": (bool, False, None),      # clamp P_t to [-1, 1]
                       "eta": (float, 0.0, (0.0, 1.0)),     # η of every step (0: deterministic DDIM)
                       "steps": (int, 50, (2, 1000))}       # generation steps


def _read_defaults_file(folder) -> tuple[Path, dict]:
    path = Path(folder) / MODEL_DEFAULTS_FILE
    data = read_json(path, '; write {"injection_defaults": {"t_edit": 400, ...}}', expect=None)
    if not isinstance(data, dict) or set(data) - MODEL_DEFAULTS_KEYS:
        extra = sorted(set(data) - MODEL_DEFAULTS_KEYS) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: unexpected content {extra}; the file holds "
                         '{"injection_defaults": {...}} (and optionally "generation_defaults" and "comment")')
    return path, data


def read_generation_defaults(folder) -> dict:
    """The ``generation_defaults`` of ``folder/diffstyle_lab.json`` (``{"clip_x0": true, "eta": 1.0, "steps": 100}``),
    checked strictly."""
    path, data = _read_defaults_file(folder)
    d = data.get("generation_defaults", {})
    if not isinstance(d, dict):
        raise ValueError(f"{path}: generation_defaults must be an object, e.g. {{\"clip_x0\": true}}")
    for k, v in d.items():
        if k not in GENERATION_SETTINGS:
            raise ValueError(f"{path}: generation_defaults.{k} is unknown; choose from {sorted(GENERATION_SETTINGS)}")
        kind, _, bounds = GENERATION_SETTINGS[k]
        if type(v) is not kind:
            raise ValueError(f"{path}: generation_defaults.{k}={v!r} must be of type {kind.__name__}")
        if bounds is not None and not bounds[0] <= v <= bounds[1]:
            raise ValueError(f"{path}: generation_defaults.{k}={v!r} must be in [{bounds[0]}, {bounds[1]}]")
    return dict(d)


def read_model_defaults(folder) -> dict:
    """The ``injection_defaults`` of ``folder/diffstyle_lab.json``, checked strictly.

    The file is ``{"injection_defaults": {"t_edit": 500, "t_boost": 200, ...}}``: keys are
    :class:`~diffstyle_lab.sampling.InjectionConfig` fields (not ``mask``), values of the field's
    type and range. Anything else is a one-line ``ValueError`` naming the file.
    """
    path, data = _read_defaults_file(folder)
    d = data.get("injection_defaults", {})
    if not isinstance(d, dict):
        raise ValueError(f"{path}: injection_defaults must be an object of InjectionConfig fields")
    fields = {f.name: f.default for f in dataclasses.fields(InjectionConfig) if f.name != "mask"}
    for k, v in d.items():
        if k not in fields:
            raise ValueError(f"{path}: injection_defaults.{k} is not an InjectionConfig field; "
                             f"choose from {sorted(fields)}")
        want = type(fields[k])
        ok = isinstance(v, bool) if want is bool else \
            (isinstance(v, (int, float)) and not isinstance(v, bool)) if want is float else \
            (isinstance(v, want) and not isinstance(v, bool))
        if not ok:
            raise ValueError(f"{path}: injection_defaults.{k}={v!r} must be of type {want.__name__}")
    try:
        InjectionConfig(**d).validate()
    except ValueError as e:
        raise ValueError(f"{path}: injection_defaults: {e}") from None
    return dict(d)


UNET_PATTERNS = ["*.json", "*.safetensors", "unet/*", "scheduler/*"]


def hub_snapshot(repo_id: str, revision: str, local_files_only: bool | None, patterns=UNET_PATTERNS,
                 use: str = "--model PATH / load_model(PATH)", list_patterns: bool = False) -> Path:
    """The local folder of ``repo_id@revision`` (only ``patterns``): the Hugging Face cache first, the
    hub second unless ``local_files_only`` (default: ``$HF_HUB_OFFLINE``). When neither works,
    :class:`ModelUnavailableError` names the download command to run on a connected machine and how
    to ``use`` the folder here. Shared by :func:`load_model` and :func:`diffstyle_lab.backends.sd.load_sd`."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover
        raise ModelUnavailableError("huggingface_hub is needed to load hub ids; pass a local folder instead") from e
    files = " " + " ".join(repr(p) if "*" in p else p for p in patterns) if list_patterns else ""
    fix = (f"On a machine with internet run\n  huggingface-cli download {repo_id} --revision {revision}{files} "
           f"--local-dir {repo_id.split('/')[-1]}\nthen copy that folder here and pass its path "
           f"({use}), or copy the Hugging Face cache (~/.cache/huggingface/hub).")
    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "True")
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True))
    except Exception:
        if local_files_only:
            raise ModelUnavailableError(f"{repo_id}@{revision} is not in the local cache and the hub is "
                                        f"off (HF_HUB_OFFLINE / local_files_only).\n{fix}") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, etag_timeout=10))
    except Exception as e:
        raise ModelUnavailableError(f"cannot download {repo_id}@{revision} ({type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''}).\n{fix}") from None


# ---------------------------------------------------------------------------------------------
# Random U-Nets for tests, shapes and speed

def tiny_unet(levels: int = 2, attention: bool = True, layers_per_block: int = 1, sample_size: int = 16,
              channels: int = 8, seed: int = 0):
    """A tiny random ``UNet2DModel`` (levels 2–4, optional attention) for tests."""
    from diffusers import UNet2DModel
    torch.manual_seed(seed)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    ch = tuple(channels * min(2 ** i, 4) for i in range(levels))
    return UNet2DModel(sample_size=sample_size, in_channels=3, out_channels=3, layers_per_block=layers_per_block,
                       block_out_channels=ch, down_block_types=tuple(down), up_block_types=tuple(up),
                       norm_num_groups=4, attention_head_dim=channels,
                       add_attention=attention).eval().requires_grad_(False)


def tiny_model(seed: int = 0, **kw) -> DiffusionModel:
    return DiffusionModel(tiny_unet(seed=seed, **kw), alphas_cumprod_from_config(DEFAULT_SCHEDULER),
                          dict(DEFAULT_SCHEDULER), f"tiny-random(seed={seed})")


def ddpm256_unet(seed: int = 0):
    """The google/ddpm-*-256 layout (113.7 M parameters, h = 512×8×8) with random weights."""
    from diffusers import UNet2DModel
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=256, in_channels=3, out_channels=3, layers_per_block=2,
                       block_out_channels=(128, 128, 256, 256, 512, 512),
                       down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
                       attention_head_dim=None, norm_eps=1e-6, downsample_padding=0, flip_sin_to_cos=False,
                       freq_shift=1).eval().requires_grad_(False)


def ddpm256_model(seed: int = 0) -> DiffusionModel:
    return DiffusionModel(ddpm256_unet(seed), alphas_cumprod_from_config(DEFAULT_SCHEDULER),
                          dict(DEFAULT_SCHEDULER), f"ddpm-256-layout-random(seed={seed})")
