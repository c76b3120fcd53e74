# intel-extension-for-pytorch 2.8.0 from PyPI: the CPU build (AVX-512 / AMX kernels, fp32
# `ipex.optimize` on AVX2). It is ABI-bound to torch 2.8.0, which python.nix provides.
{
  lib,
  buildPythonPackage,
  fetchComfyxWheel,
  comfyxSources,
  stdenv,
  autoPatchelfHook,
  python,
  torch,
  numpy,
  packaging,
  psutil,
}:
buildPythonPackage {
  pname = "intel-extension-for-pytorch";
  inherit (comfyxSources.intel-extension-for-pytorch) version;
  format = "wheel";
  src = fetchComfyxWheel "intel-extension-for-pytorch";

  nativeBuildInputs = [ autoPatchelfHook ];
  # Its libraries need libstdc++ and libgomp (the wheel's NEEDED entries) besides torch's.
  buildInputs = [ stdenv.cc.cc.lib ];
  # libtorch*.so / libc10.so live inside the torch package, not in a lib/ directory.
  preFixup = ''
    addAutoPatchelfSearchPath "${torch}/${python.sitePackages}/torch/lib"
  '';
  dependencies = [
    torch
    numpy
    packaging
    psutil
  ];
  pythonImportsCheck = [ "intel_extension_for_pytorch" ];
  meta = {
    license = lib.licenses.asl20;
    platforms = [ "x86_64-linux" ];
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
  };
}
