"""Other models than the package's pixel U-Nets: Stable Diffusion in latent space (:mod:`.sd`, an
ε-provider for the same sampler) and original DDPM / SDEdit checkpoints converted to diffusers folders
(:mod:`.convert`)."""
