"""diffstyle_lab — h-space exploration and training-free style transfer by content injection
(DiffStyle / InjectFusion, arXiv 2303.15403) on diffusers U-Nets."""

__version__ = "0.1.0"

from .cache import InversionCache  # noqa: E402
from .hooks import HookedUNet, NoMiddleBlockError  # noqa: E402
from .models import (DiffusionModel, ModelUnavailableError, ddpm256_model, load_default_model,  # noqa: E402
                     load_model, tiny_model)
from .sampling import (InjectionConfig, Inversion, Result, StepInfo, ddim_invert, generate,  # noqa: E402
                       inject, reverse, sample, timestep_grid)

__all__ = ["InversionCache", "HookedUNet", "NoMiddleBlockError", "DiffusionModel", "ModelUnavailableError",
           "ddpm256_model", "load_default_model", "load_model", "tiny_model", "InjectionConfig", "Inversion",
           "Result", "StepInfo", "ddim_invert", "generate", "inject", "reverse", "sample", "timestep_grid"]
