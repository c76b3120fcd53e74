# spandrel, the model-architecture loader ComfyUI's upscale and restoration nodes use. Our nixpkgs
# pin (nixos-25.11) has no python3Packages.spandrel, so it is built here from PyPI's pure-Python
# wheel: 0.4.1, the release pip installed for ComfyUI v0.3.64 when it came out (0.4.2 followed in
# February 2026). Its dependencies are the wheel's Requires-Dist.
{
  lib,
  buildPythonPackage,
  fetchComfyxWheel,
  comfyxSources,
  torch,
  torchvision,
  safetensors,
  numpy,
  einops,
  typing-extensions,
}:
buildPythonPackage {
  pname = "spandrel";
  inherit (comfyxSources.spandrel) version;
  format = "wheel";
  src = fetchComfyxWheel "spandrel";
  dependencies = [
    torch
    torchvision
    safetensors
    numpy
    einops
    typing-extensions
  ];
  pythonImportsCheck = [ "spandrel" ];
  meta = {
    description = "Loads PyTorch image models of many architectures by their state dict";
    homepage = "https://github.com/chaiNNer-org/spandrel";
    license = lib.licenses.mit;
  };
}
