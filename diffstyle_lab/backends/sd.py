"""Content injection in Stable Diffusion's latent space (``docs/method.md`` §9).

What is SD-specific lives here: the VAE (latents scaled by its ``scaling_factor``), the text
encoder, classifier-free guidance and the v-prediction conversion, all in the ε-provider
:class:`LatentEps`; :func:`~diffstyle_lab.sampling.ddim_invert` and
:func:`~diffstyle_lab.sampling.reverse` run unchanged on it. A local pipeline folder, or a hub id
resolved through the local Hugging Face cache (pin ``revision=``; only the needed ``*.safetensors``
and configs are fetched, loaded strictly)::

    sd = load_sd("stable-diffusion-v1-5/stable-diffusion-v1-5", revision="<commit>", device="cuda",
                 dtype=torch.float16)                          # or load_sd("/path/to/sd15-folder")
    c, s = load_image("face.jpg", 512), load_image("painting.jpg", 512)
    r = inject_sd(sd, c, s, gamma=0.3, t_edit=400, t_boost=0, steps=50, inversion_steps=50)

Checkpoints: SD 1.5 (512 px, h 1280×8×8), ``stabilityai/stable-diffusion-2-1-base`` (512 px) and
``stabilityai/stable-diffusion-2-1`` (768 px, v-prediction: the U-Net output is converted to ε).
Prompts need the optional ``transformers`` package; without it (or ``text_encoder=False``) pass
``prompt_embeds=`` / ``negative_prompt_embeds=`` (B×L×D or 1×L×D). ``guidance_scale=None`` runs
the conditional branch alone; with guidance, each branch gets the content h of the same branch and
``Inversion.h`` is B×n×k×C×h×w, k = 2 ([uncond, cond]), else k = 1. :func:`inject_sd` inverts without the
disk cache; :class:`LatentEps` is an ε-provider like any other, so ``dl.inject(LatentEps(sd, cond), images,
images, cache=InversionCache())`` and ``cached_invert`` cache its inversions (keyed by its U-Net, schedule
and conditioning), and ``diffstyle-lab inject --provider latent`` runs it from the command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import torch

from .. import maths
from ..fileio import read_json, tensor_digest
from ..hooks import HookedUNet
from ..models import DiffusionModel, alphas_cumprod_from_config, hub_snapshot
from ..sampling import Callback, InjectionConfig, Inversion, Result, ddim_invert, injection_config, run_injection

KNOWN_SD = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": {"revision": "main", "resolution": 512},
    "stabilityai/stable-diffusion-2-1-base": {"revision": "main", "resolution": 512},
    "stabilityai/stable-diffusion-2-1": {"revision": "main", "resolution": 768},
}
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


# ---------------------------------------------------------------------------------------------
# The model

@dataclasses.dataclass
class SDModel:
    """A latent diffusion model: conditional U-Net (with hook points), VAE, optional text encoder.

    ``alphas_cumprod`` is ᾱ_t (float64) from the scheduler config, whose ``prediction_type``
    says what the U-Net predicts.
    """

    unet: torch.nn.Module
    vae: torch.nn.Module
    alphas_cumprod: torch.Tensor
    scheduler_config: dict
    text_encoder: torch.nn.Module | None = None
    tokenizer: object = None
    source: str = "in-memory"
    revision: str | None = None
    text_encoder_note: str | None = None    # why there is no text encoder, for error messages

    def __post_init__(self):
        from diffusers import UNet2DConditionModel
        if not isinstance(self.unet, UNet2DConditionModel):
            raise TypeError(f"SDModel needs a UNet2DConditionModel, got {type(self.unet).__name__}; "
                            "pixel-space U-Nets use diffstyle_lab.models.DiffusionModel")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type={self.prediction_type!r} is not supported; one of {PREDICTION_TYPES}")
        if self.unet.config.in_channels != self.vae.config.latent_channels:
            raise ValueError(f"the U-Net takes {self.unet.config.in_channels} channels but the VAE makes "
                             f"{self.vae.config.latent_channels}: U-Net and VAE are from different models")
        self.hooked = HookedUNet(self.unet)
        self._weights_hash = None

    T = DiffusionModel.T  # number of training noise levels

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type") or "epsilon"

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def shift_factor(self) -> float:
        return float(getattr(self.vae.config, "shift_factor", None) or 0.0)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def cross_attention_dim(self) -> int:
        d = self.unet.config.cross_attention_dim
        return int(d if isinstance(d, int) else d[0])

    @property
    def image_size(self) -> int:
        """The native image size (U-Net sample_size × VAE factor), e.g. 512 for SD 1.5."""
        s = self.unet.config.sample_size
        return (s if isinstance(s, int) else s[0]) * self.vae_scale_factor

    @property
    def device(self):
        return self.hooked.device

    @property
    def dtype(self):
        return self.hooked.dtype

    def to(self, device=None, dtype=None):
        for m in (self.unet, self.vae, self.text_encoder):
            if m is not None:
                m.to(device=device, dtype=dtype)
        if dtype is not None:
            self._weights_hash = None
        return self

    @property
    def weights_hash(self) -> str:
        """SHA-256 of the U-Net's parameters and buffers (names, shapes, dtypes, bytes); computed once."""
        if self._weights_hash is None:
            self._weights_hash = tensor_digest(self.unet.state_dict())
        return self._weights_hash

    def describe(self) -> dict:
        return {"source": self.source, "revision": self.revision, "class": type(self.unet).__name__,
                "vae": type(self.vae).__name__, "image_size": self.image_size,
                "prediction_type": self.prediction_type, "scaling_factor": self.scaling_factor,
                "text_encoder": None if self.text_encoder is None else type(self.text_encoder).__name__,
                "scheduler": {k: self.scheduler_config.get(k) for k in
                              ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")}}


def _load_component(cls, folder: Path, dtype, variant):
    """``cls.from_pretrained(folder)`` with strict checks (no missing, unexpected or resized tensor)."""
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no config.json; expected a diffusers pipeline folder with "
                                "unet/, vae/, scheduler/ (and text_encoder/, tokenizer/)")
    try:
        model, info = cls.from_pretrained(str(folder), torch_dtype=dtype, variant=variant, local_files_only=True,
                                          low_cpu_mem_usage=False, output_loading_info=True)
    except (OSError, EnvironmentError, RuntimeError, ValueError) as e:
        raise ValueError(f"cannot load {cls.__name__} from {folder}: {str(e).splitlines()[0] if str(e) else e}") \
            from None
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise ValueError(f"the weights in {folder} do not match its config.json (strict loading): " +
                         "; ".join(f"{k}: {sorted(map(str, v))[:8]}" for k, v in bad.items()))
    return model.eval().requires_grad_(False)


def _snapshot(repo_id: str, revision: str, variant: str | None, text_encoder: bool,
              local_files_only: bool | None) -> Path:
    w = f"diffusion_pytorch_model{'.' + variant if variant else ''}.safetensors"
    te = f"model{'.' + variant if variant else ''}.safetensors"
    patterns = ["model_index.json", "scheduler/*.json", "unet/config.json", f"unet/{w}", "vae/config.json", f"vae/{w}"]
    if text_encoder:
        patterns += ["text_encoder/config.json", f"text_encoder/{te}", "tokenizer/*"]
    return hub_snapshot(repo_id, revision, local_files_only, patterns, use="load_sd(PATH)", list_patterns=True)


def load_sd(path_or_id, revision: str | None = None, device="cpu", dtype=torch.float32, *,
            text_encoder: bool | None = None, variant: str | None = None,
            local_files_only: bool | None = None) -> SDModel:
    """Load a Stable Diffusion 1.x/2.x pipeline folder or hub id (``revision`` pinned) for injection.

    ``text_encoder``: None loads it when ``text_encoder/`` exists and ``transformers`` is
    installed (else prompts must be given as embeddings); True requires it; False skips it.
    ``variant="fp16"`` reads ``*.fp16.safetensors`` files. Hub ids resolve through the local
    Hugging Face cache first (``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` never touches the
    network); the error says what to fetch when nothing is cached.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    path = Path(str(path_or_id)).expanduser()
    if path.exists():
        root, rev = path, None
    else:
        if str(path_or_id).startswith((".", "/", "~")) or str(path_or_id).count("/") != 1:
            raise FileNotFoundError(f"model folder {path_or_id} does not exist (hub ids look like 'org/name')")
        rev = revision or KNOWN_SD.get(str(path_or_id), {}).get("revision", "main")
        import importlib.util
        has_tf = importlib.util.find_spec("transformers") is not None
        want_te = text_encoder is True or (text_encoder is None and has_tf)
        root = _snapshot(str(path_or_id), rev, variant, want_te, local_files_only)
    if not (root / "unet").is_dir() or not (root / "vae").is_dir():
        raise FileNotFoundError(f"{root} is not a Stable Diffusion pipeline folder: it needs unet/ and vae/ "
                                "(and scheduler/, text_encoder/, tokenizer/)")
    unet = _load_component(UNet2DConditionModel, root / "unet", dtype, variant)
    vae = _load_component(AutoencoderKL, root / "vae", dtype, variant)
    sch_path = root / "scheduler" / "scheduler_config.json"
    if not sch_path.is_file():
        raise FileNotFoundError(f"{sch_path} is missing: the noise schedule (and prediction_type) cannot be guessed")
    sch = read_json(sch_path, "; it should be the diffusers scheduler config of the pipeline")
    te, tok, note = None, None, None
    if text_encoder is not False:
        te_dir = root / "text_encoder"
        try:
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError:
            note = "the optional package transformers is not installed (pip install transformers)"
            if text_encoder:
                raise ImportError(f"text_encoder=True: {note}") from None
        else:
            if te_dir.is_dir() and (root / "tokenizer").is_dir():
                te = CLIPTextModel.from_pretrained(str(te_dir), torch_dtype=dtype, local_files_only=True,
                                                   variant=variant).eval().requires_grad_(False)
                tok = CLIPTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
            else:
                note = f"{root} has no text_encoder/ and tokenizer/"
                if text_encoder:
                    raise FileNotFoundError(f"text_encoder=True: {note}")
    else:
        note = "loaded with text_encoder=False"
    m = SDModel(unet, vae, alphas_cumprod_from_config(sch), sch, te, tok, str(path_or_id), rev, note)
    return m.to(device)


# ---------------------------------------------------------------------------------------------
# Text, VAE

@torch.no_grad()
def encode_prompt(model: SDModel, prompt: str | Sequence[str] | None) -> torch.Tensor:
    """CLIP text embeddings (B×L×D) of ``prompt`` (None → the empty prompt ``""``)."""
    if model.text_encoder is None or model.tokenizer is None:
        raise ValueError(f"no text encoder is loaded ({model.text_encoder_note or 'none given'}): pass "
                         "prompt_embeds= / negative_prompt_embeds= (B×L×D tensors) instead of prompts")
    prompts = [""] if prompt is None else [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a string, a list of strings or None, got {prompt!r}")
    tok = model.tokenizer
    enc = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
    mask = enc.attention_mask.to(model.device) if getattr(model.text_encoder.config, "use_attention_mask", False) \
        else None
    out = model.text_encoder(enc.input_ids.to(model.device), attention_mask=mask)
    return out[0].to(model.dtype)


def check_images(model: SDModel, x, name: str = "images") -> torch.Tensor:
    """B×3×H×W in [−1, 1], H and W multiples of 8·2^(levels−1) (64 for SD 1.x/2.x), moved to the
    model's device and dtype."""
    f = model.vae_scale_factor * 2 ** (len(model.unet.config.block_out_channels) - 1)
    if not torch.is_tensor(x) or x.dim() != 4:
        raise ValueError(f"{name}: expected a B×C×H×W tensor in [-1, 1] (diffstyle_lab.images.load_image(path, "
                         f"{model.image_size}))")
    cin = model.vae.config.in_channels
    if x.shape[1] != cin or x.shape[2] % f or x.shape[3] % f or x.shape[0] == 0:
        raise ValueError(f"{name} have shape {tuple(x.shape)}: this model needs {cin}×H×W with H and W multiples "
                         f"of {f} (native size {model.image_size}); load them with "
                         f"diffstyle_lab.images.load_image(path, size={model.image_size})")
    if not maths.is_finite(x):
        raise ValueError(f"{name} contain NaN or inf")
    if float(x.min()) < -1.01 or float(x.max()) > 1.01:
        raise ValueError(f"{name} range from {float(x.min()):.3g} to {float(x.max()):.3g}; expected [-1, 1]")
    return x.to(model.device, model.dtype)


@torch.no_grad()
def encode_images(model: SDModel, x: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
    """Images in [−1, 1] → scaled latents z = (E(x) − shift)·scaling_factor (the posterior mean
    unless ``sample``)."""
    x = check_images(model, x).to(model.vae.dtype)
    dist = model.vae.encode(x).latent_dist
    z = dist.sample(generator) if sample else dist.mean
    return ((z - model.shift_factor) * model.scaling_factor).to(model.dtype)


@torch.no_grad()
def decode_latents(model: SDModel, z: torch.Tensor) -> torch.Tensor:
    """Scaled latents → images in [−1, 1]."""
    z = z.to(model.device, model.vae.dtype) / model.scaling_factor + model.shift_factor
    return model.vae.decode(z).sample.clamp(-1, 1)


# ---------------------------------------------------------------------------------------------
# Conditioning and the guided ε

@dataclasses.dataclass
class Conditioning:
    """Text conditioning of every U-Net call: ``cond`` (1×L×D or B×L×D), and for classifier-free
    guidance ``uncond`` (same shape) and ``guidance_scale`` (None: conditional branch only)."""

    cond: torch.Tensor
    uncond: torch.Tensor | None = None
    guidance_scale: float | None = None

    @property
    def guided(self) -> bool:
        return self.guidance_scale is not None

    def validate(self, model: SDModel) -> "Conditioning":
        d = model.cross_attention_dim
        for name, e in (("prompt_embeds", self.cond), ("negative_prompt_embeds", self.uncond)):
            if e is None:
                continue
            if not torch.is_tensor(e) or e.dim() != 3 or e.shape[-1] != d:
                raise ValueError(f"{name}: expected a B×L×{d} tensor (the U-Net's cross_attention_dim), got "
                                 f"{tuple(e.shape) if torch.is_tensor(e) else type(e).__name__}")
            if not maths.is_finite(e):
                raise ValueError(f"{name} contain NaN or inf")
        if self.guided:
            s = self.guidance_scale
            if not isinstance(s, (int, float)) or not (s == s) or s < 0 or s == float("inf"):
                raise ValueError(f"guidance_scale={s!r}: must be a finite number ≥ 0 (None: no guidance)")
            if self.uncond is None:
                raise ValueError("guidance_scale needs unconditional embeddings (negative_prompt_embeds)")
            if self.uncond.shape[1:] != self.cond.shape[1:]:
                raise ValueError(f"negative_prompt_embeds {tuple(self.uncond.shape)} and prompt_embeds "
                                 f"{tuple(self.cond.shape)} must have the same L×D")
        return self

    def batch(self, b: int, which: str, model: SDModel) -> torch.Tensor:
        e = self.cond if which == "cond" else self.uncond
        if e.shape[0] not in (1, b):
            raise ValueError(f"{which} embeddings have batch {e.shape[0]} for {b} images; pass 1 or {b}")
        return e.to(model.device, model.dtype).expand(b, *e.shape[1:])


def make_conditioning(model: SDModel, prompt=None, negative_prompt=None, *, prompt_embeds=None,
                      negative_prompt_embeds=None, guidance_scale: float | None = None) -> Conditioning:
    """Embeddings from prompts (text encoder) or given directly; the unconditional branch (empty or
    negative prompt) is built only when ``guidance_scale`` is set."""
    if prompt_embeds is not None and prompt is not None:
        raise ValueError("pass either prompt or prompt_embeds, not both")
    cond = prompt_embeds if prompt_embeds is not None else encode_prompt(model, prompt)
    uncond = None
    if guidance_scale is not None:
        if negative_prompt_embeds is not None and negative_prompt is not None:
            raise ValueError("pass either negative_prompt or negative_prompt_embeds, not both")
        uncond = negative_prompt_embeds if negative_prompt_embeds is not None else encode_prompt(model, negative_prompt)
    return Conditioning(cond, uncond, guidance_scale).validate(model)


def _to_eps(model: SDModel, out: torch.Tensor, x: torch.Tensor, a_t: float) -> torch.Tensor:
    """The U-Net's output as ε (ε-, v- or x_0-prediction)."""
    p = model.prediction_type
    if p == "epsilon":
        return out
    if p == "v_prediction":            # v = √ᾱ·ε − √(1−ᾱ)·x_0  ⇒  ε = √ᾱ·v + √(1−ᾱ)·x_t
        return a_t ** 0.5 * out + (1 - a_t) ** 0.5 * x
    return (x - a_t ** 0.5 * out) / (1 - a_t) ** 0.5


# ---------------------------------------------------------------------------------------------
# Inversion and the reverse process in latent space

def _halves(h: torch.Tensor, b: int, both: bool) -> torch.Tensor:
    """B×k×C×h×w from the recorded h (2B stacked [uncond; cond] when ``both``)."""
    return torch.stack([h[:b], h[b:]], 1) if both else h[:, None]


def _check_latents(model: SDModel, z, name="latents"):
    if not torch.is_tensor(z) or z.dim() != 4 or z.shape[1] != model.latent_channels or z.shape[0] == 0:
        raise ValueError(f"{name}: expected B×{model.latent_channels}×h×w latents, got "
                         f"{tuple(z.shape) if torch.is_tensor(z) else type(z).__name__}")
    if not maths.is_finite(z):
        raise ValueError(f"{name} contain NaN or inf")
    return z.to(model.device, model.dtype)


class LatentEps:
    """The :class:`~diffstyle_lab.sampling.EpsProvider` of a latent U-Net (as PixelEps is of a pixel one): every call
    runs under ``cond`` (guided on the doubled batch [uncond; cond] when ``cond.guided``), and the
    output is converted to ε (v- and x_0-prediction). Pass it to :func:`~diffstyle_lab.sampling.reverse`
    and :func:`~diffstyle_lab.sampling.ddim_invert` in place of a pixel model.

    Inversion follows the conditional ε; ``record_uncond`` (default: ``cond.guided``) also records
    the unconditional branch's h, which guided injection needs. The recorded ``Inversion.h`` is
    B×n×k×C×h×w with k = 2 ([uncond, cond]) or 1 ([cond]).
    """

    label = "latent "

    def __init__(self, model: SDModel, cond: Conditioning, record_uncond: bool | None = None):
        self.model, self.cond = model, cond.validate(model)
        self.record_uncond = cond.guided if record_uncond is None else bool(record_uncond)
        if self.record_uncond and cond.uncond is None:
            raise ValueError("record_uncond needs unconditional embeddings (negative_prompt_embeds / guidance_scale)")

    def check_x0(self, z, name="latents"):
        return _check_latents(self.model, z, name)

    def check_x_T(self, z, name="z_T"):
        return _check_latents(self.model, z, name)

    def check_content(self, content: Inversion):
        if content.h.dim() != 6:
            raise ValueError("content is not a latent-space inversion (its h must be B×n×k×C×h×w): "
                             "make it with ddim_invert(LatentEps(model, cond), z)")
        if self.cond.guided and content.h.shape[2] != 2:
            raise ValueError("guided injection needs the content's h of both branches: invert it with "
                             "LatentEps(model, cond, record_uncond=True) (inject_sd does this when "
                             "guidance_scale is set)")

    def _forward(self, x, t, both: bool, edit=None, record: bool = False):
        """One U-Net call on [x; x] under [uncond; cond] embeddings when ``both`` (else x under cond),
        the output converted to ε; with ``edit`` the asymmetric call (batch doubling again)."""
        b, m = x.shape[0], self.model
        a_t = float(m.alphas_cumprod[t])
        emb = self.cond.batch(b, "cond", m)
        if both:
            x, emb = torch.cat([x, x]), torch.cat([self.cond.batch(b, "uncond", m), emb])
        if edit is not None:
            eps, eps_t, h, h_t, g = m.hooked.asymmetric_eps(x, t, edit, force_doubling=True, encoder_hidden_states=emb)
            return _to_eps(m, eps, x, a_t), _to_eps(m, eps_t, x, a_t), h, h_t, g
        if record:
            with m.hooked.record("h", "g") as rec:
                out = m.hooked.eps(x, t, encoder_hidden_states=emb)
        else:
            out, rec = m.hooked.eps(x, t, encoder_hidden_states=emb), {}
        return _to_eps(m, out, x, a_t), rec.get("h"), rec.get("g")

    def _guide(self, eps):
        """ε_u + s·(ε_c − ε_u) from the stacked [ε_u; ε_c] when guided."""
        if not self.cond.guided:
            return eps
        eps_u, eps_c = eps.chunk(2)
        return eps_u + self.cond.guidance_scale * (eps_c - eps_u)

    def eps(self, x, t, record: bool = False):
        """``(ε, h, g)``: ε(x_t) under the conditioning, guided when ``cond.guided`` (h, g stacked
        [uncond; cond] then)."""
        eps, h, g = self._forward(x, t, self.cond.guided, record=record)
        return self._guide(eps), h, g

    def asymmetric(self, x, t, edit):
        """``(ε_g, ε̃_g, h, h̃, g)``: ε(x_t) and ε(x_t | h̃), guided alike. When guided, ``edit``
        receives the h of both branches stacked [uncond; cond] and returns h̃ in the same order."""
        eps, eps_t, h, h_t, g = self._forward(x, t, self.cond.guided, edit=edit)
        return self._guide(eps), self._guide(eps_t), h, h_t, g

    def invert_eps(self, x, t):
        """The conditional ε (which the inversion follows) and h of the recorded branches."""
        eps, h, g = self._forward(x, t, self.record_uncond, record=True)
        b = x.shape[0]
        return eps[b:] if self.record_uncond else eps, _halves(h, b, self.record_uncond), h, g

    def content_h(self, content: Inversion, t: int):
        """h^content at t for the branches that run: [uncond; cond] stacked (2B) or cond (B)."""
        hc = content.h_at(t)                           # B×k×C×h×w
        return torch.cat([hc[:, 0], hc[:, 1]]) if self.cond.guided else hc[:, -1]

    # -- what dl.inject, the inversion cache and the command line use ---------------------------
    @property
    def image_size(self) -> int:
        return self.model.image_size

    def encode(self, images, name="images"):
        """Images in [−1, 1] → scaled latents (:func:`encode_images`)."""
        return encode_images(self.model, check_images(self.model, images, name))

    def decode(self, z):
        return decode_latents(self.model, z)

    def cache_identity(self) -> dict:
        """What an inversion depends on besides the latents and the grid: the U-Net, the schedule (with the
        prediction type), the embeddings of the branches it runs and whether it records the unconditional h."""
        m, c = self.model, self.cond
        embs = {"cond": c.cond, **({"uncond": c.uncond} if self.record_uncond else {})}
        return {"unet": m.weights_hash, "record_uncond": self.record_uncond, "embeddings": tensor_digest(embs),
                "scheduler": {k: m.scheduler_config.get(k) for k in ("num_train_timesteps", "beta_schedule",
                              "beta_start", "beta_end", "trained_betas", "prediction_type")}}

    def manifest_info(self) -> dict:
        return {"space": "latent", "inversion_follows": "conditional ε", "guidance_scale": self.cond.guidance_scale,
                "record_uncond": self.record_uncond}


def latent_provider(path_or_id, device="cpu") -> LatentEps:
    """The command line's ``--provider latent``: :func:`load_sd` of ``path_or_id``, conditioned on the empty
    prompt without guidance (the model's text encoder makes its embedding)."""
    if not path_or_id:
        raise ValueError("--provider latent needs --model: a Stable Diffusion pipeline folder or hub id")
    model = load_sd(path_or_id, device=device)
    if model.text_encoder is None:
        raise ValueError(f"--provider latent conditions on the empty prompt, which needs the model's text encoder "
                         f"({model.text_encoder_note}); use diffstyle_lab.backends.sd.inject_sd with prompt_embeds")
    return LatentEps(model, make_conditioning(model))


def inject_sd(model: SDModel, content, style, config: InjectionConfig | None = None, *, prompt=None,
              negative_prompt=None, prompt_embeds=None, negative_prompt_embeds=None,
              guidance_scale: float | None = None, inversion_spacing: str | None = None, pairs: str = "zip",
              progress: bool = True,
              callbacks: Sequence[Callback] = (), **overrides) -> Result:
    """Content injection with Stable Diffusion: the content of ``content`` in the style of ``style``.

    ``content``/``style``: B×3×H×W images in [−1, 1] (same H×W, multiples of 8·2^(levels−1), e.g.
    512×512 for SD 1.5) or :class:`Inversion` objects from ``ddim_invert(LatentEps(model, cond), z)``. The prompt
    (or ``prompt_embeds``) conditions inversion and generation alike; ``guidance_scale`` switches on
    classifier-free guidance with ``negative_prompt`` (default: empty) as the unconditional branch.
    Keyword overrides set :class:`InjectionConfig` fields (``gamma=0.4, t_edit=500``…).
    Returns decoded images in [−1, 1] and a manifest.
    """
    cfg = injection_config(model, config, overrides)
    shapes = [tuple(v.shape[2:]) for v in (content, style) if torch.is_tensor(v)]
    for v, name in ((content, "content images"), (style, "style images")):
        if not isinstance(v, Inversion):
            check_images(model, v, name)
    if len(set(shapes)) > 1:
        raise ValueError(f"content {shapes[0]} and style {shapes[1]} images must have the same size "
                         "(h of one is injected into the other)")
    cond = make_conditioning(model, prompt, negative_prompt, prompt_embeds=prompt_embeds,
                             negative_prompt_embeds=negative_prompt_embeds, guidance_scale=guidance_scale)

    def invert(x, name, is_content):
        return ddim_invert(LatentEps(model, cond, cond.guided and is_content), encode_images(model, x),
                           cfg.inversion_steps, inversion_spacing or cfg.spacing, record_last=cfg.record_last,
                           progress=progress)
    conditioning = {"prompt": prompt if isinstance(prompt, (str, type(None))) else list(prompt),
                    "negative_prompt": negative_prompt, "prompt_embeds": prompt_embeds is not None,
                    "guidance_scale": guidance_scale}
    return run_injection(model, LatentEps(model, cond), invert, content, style, cfg, pairs=pairs,
                         progress=progress, callbacks=callbacks, decode=lambda z: decode_latents(model, z),
                         space="latent", inversion_follows="conditional ε", conditioning=conditioning)
