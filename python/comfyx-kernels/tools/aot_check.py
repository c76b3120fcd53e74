"""Compile every NVFP4 / MXFP8 Triton kernel config ahead of time for sm_89 and sm_90, without
a GPU: catches what the interpreter lets through (non-constexpr globals, layouts the compiler
cannot build) and reports per config registers, spills, shared memory, the tensor-core
instruction (wgmma or mma.sync) and whether the main loop's loads are pipelined (cp.async).
Arguments are specialized as at run time for diffusion shapes: pointers and every size but
M divisible by 16 (Triton's `tt.divisibility`), which is what lets loads be pipelined.

Usage: python python/comfyx-kernels/tools/aot_check.py [--arch 90 89]   (exit 1 on any failure)
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from comfyx_kernels.backends import triton_blockscaled_kernels as tiles
from comfyx_kernels.backends import triton_gemm_kernels as gemms

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
FLOATS = ("*bf16", "*fp16", "*fp32")


def _tile_cases():
    ints = dict.fromkeys(("rows", "cols", "scale_cols_padded", "size_class"), "i32")
    for config in tiles._TILE_CONFIGS:
        for x, hi_first in itertools.product(FLOATS, (True, False)):
            yield tiles.quantize_nvfp4_kernel, config, {
                "x_ptr": x, "pts_ptr": "*fp32", "q_ptr": "*u8", "s_ptr": "*fp8e4nv", **ints,
            }, {"HI_FIRST": hi_first}  # fmt: skip
            yield tiles.dequantize_nvfp4_kernel, config, {
                "q_ptr": "*u8", "pts_ptr": "*fp32", "s_ptr": "*fp8e4nv", "out_ptr": x, **ints,
            }, {"HI_FIRST": hi_first}  # fmt: skip
        for hi_first in (True, False):
            yield tiles.nvfp4_to_fp8_kernel, config, {
                "q_ptr": "*u8", "s_ptr": "*fp8e4nv", "out_ptr": "*fp8e4nv", **ints,
            }, {"HI_FIRST": hi_first}  # fmt: skip
        for x in FLOATS:
            yield tiles.quantize_mxfp8_kernel, config, {
                "x_ptr": x, "q_ptr": "*fp8e4nv", "s_ptr": "*u8", **ints}, {}  # fmt: skip
            yield tiles.dequantize_mxfp8_kernel, config, {
                "q_ptr": "*fp8e4nv", "s_ptr": "*u8", "out_ptr": x, **ints}, {}  # fmt: skip
        yield tiles.mxfp8_to_fp8_rowwise_kernel, config, {
            "q_ptr": "*fp8e4nv", "s_ptr": "*u8", "row_scale_ptr": "*fp32", "out_ptr": "*fp8e4nv",
            **ints}, {}  # fmt: skip


def _gemm_cases():
    ints = ("M", "N", "K", "stride_xm", "stride_om", "scale_cols_padded", "M_BUCKET")
    for config in gemms._LARGE_M + gemms._SMALL_M:
        for x, fp8 in (("*bf16", False), ("*fp16", False), ("*fp8e4nv", True)):
            out = "*fp16" if x == "*fp16" else "*bf16"
            signature = {
                "x_ptr": x, "w_ptr": "*u8", "s_ptr": "*fp8e4nv", "pts_ptr": "*fp32",
                "xs_ptr": "*fp32", "bias_ptr": out, "out_ptr": out, **dict.fromkeys(ints, "i32"),
            }  # fmt: skip
            constants = {"HAS_BIAS": True, "HI_FIRST": True, "FP8_ACT": fp8}
            yield gemms.nvfp4_weight_gemm_kernel, config, signature, constants
    ints = ("M", "N", "K", "stride_om", "sa_cols_padded", "sb_cols_padded", "M_BUCKET")
    for config in gemms._MXFP8:
        signature = {
            "a_ptr": "*fp8e4nv", "b_ptr": "*fp8e4nv", "sa_ptr": "*u8", "sb_ptr": "*u8",
            "bias_ptr": "*bf16", "out_ptr": "*bf16", **dict.fromkeys(ints, "i32"),
        }  # fmt: skip
        yield gemms.mxfp8_gemm_kernel, config, signature, {"HAS_BIAS": True}


def _resources(cubin: bytes) -> str:
    """Registers, spills (local memory) and shared memory of a compiled kernel."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel.cubin"
        path.write_bytes(cubin)
        result = subprocess.run(
            [str(CUOBJDUMP), "-res-usage", str(path)], capture_output=True, text=True, check=True
        )
    usage = dict(re.findall(r"(REG|LOCAL):(\d+)", result.stdout))
    return f"{usage.get('REG')} regs, {usage.get('LOCAL')} B local (spills)"


def _instructions(ptx: str) -> str:
    found = {name: len(re.findall(pattern, ptx)) for name, pattern in INSTRUCTIONS.items()}
    return ", ".join(f"{name} {count}" for name, count in found.items() if count)


INSTRUCTIONS = {"wgmma": r"wgmma\.mma_async", "mma.sync": r"mma\.sync", "cp.async": r"cp\.async\.c"}
# Sizes that are not multiples of 16 in general (rows of a matrix, M of a GEMM).
UNALIGNED = {"rows", "M"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, nargs="+", default=[90, 89])
    args = parser.parse_args()
    failures = 0
    for arch in args.arch:
        for kernel, config, signature, constants in itertools.chain(_tile_cases(), _gemm_cases()):
            constexprs = {**constants, **config.kwargs}
            names = kernel.fn.arg_names
            full = {name: signature.get(name, "constexpr") for name in names}
            label = f"sm_{arch} {kernel.fn.__name__} {constexprs} {signature.get('x_ptr', '')}"
            try:
                aligned = [
                    i for i, n in enumerate(names) if full[n] != "constexpr" and n not in UNALIGNED
                ]
                attrs = {(i,): [["tt.divisibility", 16]] for i in aligned}
                source = ASTSource(fn=kernel.fn, signature=full, constexprs=constexprs, attrs=attrs)
                options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
                compiled = triton.compile(
                    source, target=GPUTarget("cuda", arch, 32), options=options
                )
                found = _instructions(compiled.asm["ptx"])
                usage = _resources(compiled.asm["cubin"])
                print(
                    f"ok   {label}: {usage}, {compiled.metadata.shared} B shared, {found}",
                    flush=True,
                )
            except Exception as error:  # report every failing config, go on
                failures += 1
                print(f"FAIL {label}: {type(error).__name__}: {str(error)[:600]}", flush=True)
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
