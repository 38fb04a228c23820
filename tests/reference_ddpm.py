"""Ho et al.'s DDPM U-Net in the original key layout (SDEdit / DDIM / pytorch_diffusion code), written out from
the paper's code for one purpose: checking that diffstyle_lab.backends.convert maps an original checkpoint onto a
diffusers UNet2DModel that computes the same function. It runs in any dtype (float64 for the tight comparison);
the time embedding is computed in the input's dtype (the original code computes it in float32)."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def swish(x):
    return x * torch.sigmoid(x)


def timestep_embedding(t: torch.Tensor, dim: int, dtype=torch.float64) -> torch.Tensor:
    """DDPM's sinusoidal embedding: [sin(t·f_k), cos(t·f_k)], f_k = exp(−log(10⁴)·k/(half−1)), k < half."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=dtype, device=t.device) / (half - 1))
    arg = t.to(dtype)[:, None] * freq[None]
    e = torch.cat([arg.sin(), arg.cos()], 1)
    return F.pad(e, (0, 1)) if dim % 2 else e


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin, eps=1e-6), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout, eps=1e-6), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb):
        y = self.conv1(swish(self.norm1(x))) + self.temb_proj(swish(temb))[:, :, None, None]
        y = self.conv2(swish(self.norm2(y)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + y


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, hh, ww = x.shape
        y = self.norm(x)
        q, k, v = (m(y).flatten(2) for m in (self.q, self.k, self.v))       # b×c×n
        w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c), dim=-1)
        out = torch.einsum("bij,bcj->bci", w, v).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


def _level(blocks, attns):
    lvl = nn.Module()
    lvl.block, lvl.attn = nn.ModuleList(blocks), nn.ModuleList(attns)
    return lvl


def _conv_module(conv):
    m = nn.Module()
    m.conv = conv
    return m


class OriginalDDPM(nn.Module):
    """The original network: ``down[i]`` / ``up[i]`` is level i (highest resolution first); attention after every
    ResNet of the levels in ``attn_levels``; stride-2 convolutions after a right/bottom pad of one going down,
    nearest ×2 then a 3×3 convolution going up."""

    def __init__(self, ch, ch_mult, num_res_blocks, attn_levels, in_channels=3, out_ch=3, groups=32):
        super().__init__()
        self.ch, self.L = ch, len(ch_mult)
        temb = 4 * ch
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb), nn.Linear(temb, temb)])
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        widths = [ch * m for m in ch_mult]
        skips, c = [ch], ch
        self.down = nn.ModuleList()
        for i, w in enumerate(widths):
            blocks, attns = [], []
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(c, w, temb, groups))
                c = w
                attns += [AttnBlock(c, groups)] if i in attn_levels else []
                skips.append(c)
            lvl = _level(blocks, attns)
            if i < self.L - 1:
                lvl.downsample = _conv_module(nn.Conv2d(c, c, 3, stride=2))
                skips.append(c)
            self.down.append(lvl)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1 = ResBlock(c, c, temb, groups), AttnBlock(c, groups)
        self.mid.block_2 = ResBlock(c, c, temb, groups)
        ups = []
        for i in reversed(range(self.L)):
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(c + skips.pop(), widths[i], temb, groups))
                c = widths[i]
                attns += [AttnBlock(c, groups)] if i in attn_levels else []
            lvl = _level(blocks, attns)
            if i > 0:
                lvl.upsample = _conv_module(nn.Conv2d(c, c, 3, padding=1))
            ups.append(lvl)
        self.up = nn.ModuleList(ups[::-1])
        self.norm_out = nn.GroupNorm(groups, c, eps=1e-6)
        self.conv_out = nn.Conv2d(c, out_ch, 3, padding=1)

    def forward(self, x, t):
        temb = timestep_embedding(t, self.ch, x.dtype)
        temb = self.temb.dense[1](swish(self.temb.dense[0](temb)))
        hs = [self.conv_in(x)]
        for i, lvl in enumerate(self.down):
            for j, blk in enumerate(lvl.block):
                y = blk(hs[-1], temb)
                hs.append(lvl.attn[j](y) if len(lvl.attn) else y)
            if i < self.L - 1:
                hs.append(lvl.downsample.conv(F.pad(hs[-1], (0, 1, 0, 1))))
        y = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb)), temb)
        for i in reversed(range(self.L)):
            lvl = self.up[i]
            for j, blk in enumerate(lvl.block):
                y = blk(torch.cat([y, hs.pop()], 1), temb)
                y = lvl.attn[j](y) if len(lvl.attn) else y
            if i > 0:
                y = lvl.upsample.conv(F.interpolate(y, scale_factor=2.0, mode="nearest"))
        return self.conv_out(swish(self.norm_out(y)))


class Float64TimeEmbedding(nn.Module):
    """Stands in for a diffusers ``UNet2DModel.time_proj`` (which computes in float32 whatever the model's dtype), so
    that a float64 comparison measures the rest of the network; the embedding itself is compared on its own."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        return timestep_embedding(t, self.dim, torch.float64)


@torch.no_grad()
def max_abs_diff(original_sd: dict, unet, arch: dict, size: int, ts=(0, 10, 500, 999), seed: int = 0,
                 groups: int = 32):
    """(max |ε_original − ε_converted|, max |ε_original|) in float64 on a random batch of 2 at each t in ``ts``:
    the reference network loads ``original_sd`` strictly; ``unet`` (a copy) gets the float64 time embedding."""
    import copy
    ref = OriginalDDPM(arch["ch"], arch["ch_mult"], arch["num_res_blocks"], arch["attn_levels"],
                       arch["in_channels"], arch["out_ch"], groups)
    ref.load_state_dict(original_sd, strict=True)
    ref = ref.double().eval()
    conv = copy.deepcopy(unet).double().eval()
    conv.time_proj = Float64TimeEmbedding(arch["ch"])
    x = torch.randn(2, arch["in_channels"], size, size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    err = scale = 0.0
    for t in ts:
        tt = torch.full((2,), t)
        a, b = ref(x, tt), conv(x, tt).sample
        err, scale = max(err, float((a - b).abs().max())), max(scale, float(a.abs().max()))
    return err, scale
