"""The default model's architecture (the ``LAYOUTS`` of its diffusers ``UNet2DModel``), its noise schedule and the
folder writer: what loading, testing and training a face model share. Training itself is release tooling, outside
the package (``training/train.py`` in a checkout)."""

from __future__ import annotations

from pathlib import Path

LAYOUTS = {
    # h at 4×4 (four levels); attention at 8×8 and in the middle block.
    "h4": dict(block_out_channels=(32, 64, 64, 128),
               down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D")),
    # h at 8×8 (three levels); attention at 8×8 and in the middle block.
    "h8": dict(block_out_channels=(32, 64, 128),
               down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
               up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")),
}



def build_unet(layout: str = "h4", image_size: int = 32):
    from diffusers import UNet2DModel
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is unknown; choose one of {sorted(LAYOUTS)}")
    return UNet2DModel(sample_size=image_size, in_channels=3, out_channels=3, layers_per_block=1,
                       attention_head_dim=32, norm_num_groups=16, **LAYOUTS[layout])


def build_scheduler():
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=True)


def export(unet, path) -> None:
    """Write ``unet`` and the training noise schedule as a diffusers folder (safetensors)."""
    path = Path(path)
    unet.save_pretrained(path / "unet", safe_serialization=True)
    build_scheduler().save_pretrained(path / "scheduler")
