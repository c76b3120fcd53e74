# The Python 3.13 interpreter of one backend: nixpkgs' package set with torch swapped.
#
# Why wheels: building CUDA torch from source takes hours and tens of GB on a cache miss, and
# IPEX / torch_xla are only published as wheels built against one exact torch release. So:
#   cpu   nixpkgs' torch (built by Hydra, in the public cache)
#   cuda  nixpkgs' torch-bin / torchvision-bin / torchaudio-bin (official CUDA wheels)
#   ipex  torch 2.8.0 wheels from PyPI + intel-extension-for-pytorch 2.8.0 (needs torch==2.8.0)
#   tpu   torch 2.9.0 wheels from PyPI + torch_xla 2.9.0 + libtpu 0.0.21 (torch_xla's pin)
# The PyPI torch wheels are the CUDA builds; nixpkgs' torch-bin derivation already knows how to
# link those against nixpkgs' CUDA libraries, so ipex and tpu reuse it with another src.
{
  lib,
  cudaPackages,
  comfyxPython,
  fetchComfyxWheel,
  comfyxSources,
  backend,
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
  untested =
    super:
    lib.genAttrs [ "einops" "kornia" "safetensors" "spandrel" "torchsde" "transformers" ] (
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

  python = comfyxPython.override {
    self = python;
    packageOverrides = overrides.${backend};
  };
in
assert lib.assertOneOf "backend" backend (builtins.attrNames overrides);
python
