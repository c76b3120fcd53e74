# The Python interpreter of one variant: nixpkgs' package set with torch swapped.
#
# Why wheels: building CUDA torch from source takes hours and tens of GB on a cache miss, and
# IPEX / torch_xla are only published as wheels built against one exact torch release. So:
#   cpu       nixpkgs' torch (built by Hydra, in the public cache)
#   cuda      nixpkgs' torch-bin / torchvision-bin / torchaudio-bin (official CUDA wheels)
#   ipex      Intel GPUs: torch 2.10.0+xpu, torchvision, torchaudio and triton-xpu (PyTorch's
#             XPU wheels) with the Intel runtime wheels torch requires. Python 3.12: the pinned
#             XPU wheels are cp312. No IPEX: stock torch.xpu drives the GPU, and IPEX 2.8 is
#             bound to torch 2.8.
#   ipex-cpu  Xeon CPUs: torch 2.8.0 wheels from PyPI + intel-extension-for-pytorch 2.8.0
#   tpu       torch 2.9.0 wheels from PyPI + torch_xla 2.9.0 + libtpu 0.0.21 (torch_xla's pin)
# Every other variant runs comfyxPython (3.13). The PyPI torch wheels are the CUDA builds;
# nixpkgs' torch-bin derivation already knows how to link those against nixpkgs' CUDA libraries,
# so ipex-cpu and tpu reuse it with another src. The XPU wheels link Intel's runtime instead.
{
  lib,
  cudaPackages,
  comfyxPython,
  python312,
  fetchComfyxWheel,
  comfyxSources,
  variant,
}:
let
  # torch-bin (or torchvision-bin, torchaudio-bin) at the version of the wheel pinned as `name`.
  bin =
    drv: name:
    drv.overridePythonAttrs (old: {
      inherit (comfyxSources.${name}) version;
      src = fetchComfyxWheel name;
      # torch 2.9's libtorch_cuda.so also links NVSHMEM (libnvshmem_host.so.3), which a torch-bin
      # of an older release does not bring; every other library it links, 2.8's too, is CUDA 12's.
      buildInputs = (old.buildInputs or [ ]) ++ lib.optional (cudaPackages ? libnvshmem) cudaPackages.libnvshmem;
      # The PyPI wheels list nvidia-* and an exact triton; the CUDA libraries come from
      # nixpkgs through torch-bin's own linking, and neither IPEX nor XLA uses Triton.
      dontCheckRuntimeDeps = true;
    });

  wheelTorch = torch: vision: audio: self: super: {
    torch-bin = bin super.torch-bin torch;
    torchvision-bin = bin super.torchvision-bin vision;
    torchaudio-bin = bin super.torchaudio-bin audio;
    torch = self.torch-bin;
    torchvision = self.torchvision-bin;
    torchaudio = self.torchaudio-bin;
  };

  # Swapping torch rebuilds the pure-Python packages above it; their test suites would then run
  # against a torch the public cache never tested them with, and only slow the build down.
  # (spandrel is ours, a wheel without tests: its import check stays.)
  untested =
    super:
    lib.genAttrs [ "einops" "kornia" "safetensors" "torchsde" "transformers" ] (
      n: super.${n}.overridePythonAttrs { doCheck = false; }
    );

  overrides = {
    cpu = self: super: { };
    cuda =
      self: super:
      untested super
      // {
        torch = self.torch-bin;
        torchvision = self.torchvision-bin;
        torchaudio = self.torchaudio-bin;
        comfyx-kernels = super.comfyx-kernels.override { cudaSupport = true; };
      };
    ipex =
      self: super:
      let
        xpuWheel = name: args: self.callPackage ./xpu-wheel.nix ({ inherit name; } // args);
      in
      untested super
      // {
        intel-xpu-runtime = self.callPackage ./intel-xpu-runtime.nix { };
        triton-xpu = xpuWheel "triton-xpu-3.6.0" { };
        # The XPU build's module is `triton` too: it stands in for nixpkgs' one, so that the
        # environment never holds two.
        triton = self.triton-xpu;
        # torch's Requires-Dist: these, triton-xpu and the Intel runtime (checked at build time).
        torch = xpuWheel "torch-2.10.0-xpu" {
          dependencies = with self; [
            filelock
            typing-extensions
            setuptools
            sympy
            networkx
            jinja2
            fsspec
            triton-xpu
            intel-xpu-runtime
          ];
        };
        torchvision = xpuWheel "torchvision-0.25.0-xpu" {
          linkedTorch = self.torch;
          dependencies = with self; [
            torch
            numpy
            pillow
          ];
        };
        torchaudio = xpuWheel "torchaudio-2.10.0-xpu" {
          linkedTorch = self.torch;
          dependencies = [ self.torch ];
        };
      };
    ipex-cpu =
      self: super:
      untested super
      // wheelTorch "torch-2.8.0" "torchvision-0.23.0" "torchaudio-2.8.0" self super
      // {
        intel-extension-for-pytorch = self.callPackage ./intel-extension-for-pytorch.nix { };
      };
    tpu =
      self: super:
      untested super
      // wheelTorch "torch-2.9.0" "torchvision-0.24.0" "torchaudio-2.9.0" self super
      // {
        libtpu = self.callPackage ./libtpu.nix { };
        torch-xla = self.callPackage ./torch-xla.nix { };
      };
  };

  # The pinned XPU wheels are cp312 only.
  interpreter = if variant == "ipex" then python312 else comfyxPython;
  python = interpreter.override {
    self = python;
    packageOverrides = overrides.${variant};
  };
in
assert lib.assertOneOf "variant" variant (builtins.attrNames overrides);
python
