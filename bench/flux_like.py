"""A Flux.1-architecture denoiser for benchmarks: Flux's widths and block structure (double-stream
blocks over image and text tokens, single-stream blocks, adaLN modulation, QK RMSNorm, RoPE,
joint attention), random weights, any depth (Flux.1: 19 double + 38 single blocks). Inputs are
a 1024² image (64 x 64 tokens of 2x2 latent patches) and 512 text tokens.

`build(double, single)` makes it on the GPU in bf16 (nn.Linear's default initialization, which
keeps activations O(1)). `quantize_linears(model, mode, kitchen)` runs every Linear through one quantized path
(fp8, nvfp4, nvfp4-w4a8, nvfp4-kitchen, mxfp8, mxfp8-kitchen) until the returned restore() is called.
"""

from __future__ import annotations

from collections.abc import Callable

import comfyx_kernels as cx
import torch
import torch.nn.functional as F
from comfyx_kernels.blockscaled import nvfp4_tensor_scale
from comfyx_kernels.quantized_tensor import QuantizedTensor, fp8_linear
from torch import nn

HIDDEN, HEADS, MLP = 3072, 24, 4 * 3072
IMAGE_TOKENS, TEXT_TOKENS = 64 * 64, 512
IN_CHANNELS, TEXT_DIM, VEC_DIM = 64, 4096, 768


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (HIDDEN,)) * (1 + scale) + shift


def attention(q, k, v, freqs) -> torch.Tensor:
    """(B, L, 3, H, D) → RoPE on q, k, then SDPA; returns (B, L, H * D)."""
    q, k = F.rms_norm(q, (q.shape[-1],)), F.rms_norm(k, (k.shape[-1],))
    q, k = cx.apply_rope(q.transpose(1, 2), k.transpose(1, 2), freqs)
    out = F.scaled_dot_product_attention(q, k, v.transpose(1, 2))
    return out.transpose(1, 2).flatten(2)


def split_heads(qkv: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return qkv.unflatten(-1, (3, HEADS, -1)).unbind(2)


class DoubleBlock(nn.Module):
    def __init__(self):
        super().__init__()
        for stream in ("img", "txt"):
            setattr(self, f"{stream}_mod", nn.Linear(HIDDEN, 6 * HIDDEN))
            setattr(self, f"{stream}_qkv", nn.Linear(HIDDEN, 3 * HIDDEN))
            setattr(self, f"{stream}_proj", nn.Linear(HIDDEN, HIDDEN))
            setattr(self, f"{stream}_mlp_in", nn.Linear(HIDDEN, MLP))
            setattr(self, f"{stream}_mlp_out", nn.Linear(MLP, HIDDEN))

    def forward(self, img, txt, vec, freqs):
        mods = {s: getattr(self, f"{s}_mod")(F.silu(vec)).chunk(6, dim=-1) for s in ("img", "txt")}
        qkv = {
            s: split_heads(getattr(self, f"{s}_qkv")(modulate(x, *mods[s][:2])))
            for s, x in (("img", img), ("txt", txt))
        }
        q, k, v = (torch.cat([qkv["txt"][i], qkv["img"][i]], dim=1) for i in range(3))
        joint = attention(q, k, v, freqs)
        out = {"txt": joint[:, :TEXT_TOKENS], "img": joint[:, TEXT_TOKENS:]}
        streams = {"img": img, "txt": txt}
        for s in ("img", "txt"):
            _, _, gate1, shift2, scale2, gate2 = mods[s]  # shift1, scale1 went into qkv
            x = streams[s] + gate1 * getattr(self, f"{s}_proj")(out[s])
            hidden = F.gelu(getattr(self, f"{s}_mlp_in")(modulate(x, shift2, scale2)), approximate="tanh")
            streams[s] = x + gate2 * getattr(self, f"{s}_mlp_out")(hidden)
        return streams["img"], streams["txt"]


class SingleBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.mod = nn.Linear(HIDDEN, 3 * HIDDEN)
        self.linear1 = nn.Linear(HIDDEN, 3 * HIDDEN + MLP)
        self.linear2 = nn.Linear(HIDDEN + MLP, HIDDEN)

    def forward(self, x, vec, freqs):
        shift, scale, gate = self.mod(F.silu(vec)).chunk(3, dim=-1)
        qkv, mlp = self.linear1(modulate(x, shift, scale)).split([3 * HIDDEN, MLP], dim=-1)
        joint = attention(*split_heads(qkv), freqs)
        return x + gate * self.linear2(torch.cat([joint, F.gelu(mlp, approximate="tanh")], dim=-1))


class FluxLike(nn.Module):
    def __init__(self, double_blocks: int = 19, single_blocks: int = 38):
        super().__init__()
        self.img_in = nn.Linear(IN_CHANNELS, HIDDEN)
        self.txt_in = nn.Linear(TEXT_DIM, HIDDEN)
        self.time_in = nn.Sequential(nn.Linear(256, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, HIDDEN))
        self.vector_in = nn.Sequential(nn.Linear(VEC_DIM, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, HIDDEN))
        self.double_blocks = nn.ModuleList(DoubleBlock() for _ in range(double_blocks))
        self.single_blocks = nn.ModuleList(SingleBlock() for _ in range(single_blocks))
        self.final_mod = nn.Linear(HIDDEN, 2 * HIDDEN)
        self.final = nn.Linear(HIDDEN, IN_CHANNELS)

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        device, dtype = self.img_in.weight.device, self.img_in.weight.dtype
        img = torch.randn(1, IMAGE_TOKENS, IN_CHANNELS, device=device, dtype=dtype)
        txt = torch.randn(1, TEXT_TOKENS, TEXT_DIM, device=device, dtype=dtype)
        t_freq = torch.randn(1, 256, device=device, dtype=dtype)
        y = torch.randn(1, VEC_DIM, device=device, dtype=dtype)
        positions = torch.arange(TEXT_TOKENS + IMAGE_TOKENS, device=device, dtype=torch.float32)
        inverse = 10000.0 ** (-torch.arange(0, 64, device=device) / 64)
        angle = positions[:, None] * inverse[None, :]
        cos, sin = angle.cos(), angle.sin()
        freqs = torch.stack([cos, -sin, sin, cos], dim=-1).reshape(1, 1, -1, 64, 2, 2)
        return img, txt, t_freq, y, freqs

    def forward(self, img, txt, t_freq, y, freqs):
        vec = (self.time_in(t_freq) + self.vector_in(y))[:, None]
        img, txt = self.img_in(img), self.txt_in(txt)
        for block in self.double_blocks:
            img, txt = block(img, txt, vec, freqs)
        x = torch.cat([txt, img], dim=1)
        for block in self.single_blocks:
            x = block(x, vec, freqs)
        shift, scale = self.final_mod(F.silu(vec)).chunk(2, dim=-1)
        return self.final(modulate(x[:, TEXT_TOKENS:], shift, scale))

    def weight_bytes(self) -> int:
        total = 0
        for module in self.modules():
            if isinstance(module, nn.Linear):
                stored = getattr(module, "quantized_bytes", None)
                total += stored if stored is not None else module.weight.nbytes
        return total


def build(double_blocks: int, single_blocks: int) -> FluxLike:
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            return FluxLike(double_blocks, single_blocks).eval()
    finally:
        torch.set_default_dtype(default)


def _path(linear: nn.Linear, mode: str, kitchen: dict) -> tuple[Callable, int]:
    """The forward for `linear` in `mode`, and its weight's bytes in memory."""
    w, bias = linear.weight.detach(), linear.bias
    if mode == "fp8":
        qw = QuantizedTensor.from_float(w)
        return lambda x: fp8_linear(x, qw, bias), qw.qdata.nbytes
    if mode.startswith("nvfp4"):
        scale = nvfp4_tensor_scale(w)
        q, s = cx.quantize_nvfp4(w, scale)
        if mode in ("nvfp4", "nvfp4-w4a8"):
            activation = "fp8" if mode == "nvfp4-w4a8" else "bf16"
            forward = lambda x: cx.nvfp4_linear(x, q, s, scale, bias, activation=activation)  # noqa: E731
            return forward, q.nbytes + s.nbytes
        ck = kitchen["cuda"]
        return lambda x: F.linear(x, ck.dequantize_nvfp4(q, scale, s, w.dtype), bias), q.nbytes + s.nbytes
    q, s = cx.quantize_mxfp8(w)
    if mode == "mxfp8":
        return lambda x: cx.mxfp8_linear(x, q, s, bias), q.nbytes + s.nbytes
    ck = kitchen["eager"]
    return lambda x: F.linear(x, ck.dequantize_mxfp8(q, s, w.dtype), bias), q.nbytes + s.nbytes


def quantize_linears(model: nn.Module, mode: str, kitchen: dict) -> Callable[[], None]:
    """Every Linear of `model` runs `mode`'s path until restore() (the bf16 weights stay)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for linear in linears:
        linear.forward, linear.quantized_bytes = _path(linear, mode, kitchen)

    def restore() -> None:
        for linear in linears:
            del linear.forward, linear.quantized_bytes

    return restore
