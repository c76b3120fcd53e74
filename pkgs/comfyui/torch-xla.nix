# torch_xla 2.9.0 from PyPI (ABI-bound to torch 2.9.0). It declares no torch dependency itself.
{
  lib,
  buildPythonPackage,
  fetchComfyxWheel,
  comfyxSources,
  stdenv,
  autoPatchelfHook,
  python,
  torch,
  libtpu,
  absl-py,
  numpy,
  pyyaml,
  requests,
}:
buildPythonPackage {
  pname = "torch-xla";
  inherit (comfyxSources.torch-xla) version;
  format = "wheel";
  src = fetchComfyxWheel "torch-xla";

  nativeBuildInputs = [ autoPatchelfHook ];
  # _XLAC links libpython3.13 and libstdc++ (the wheel's NEEDED entries) besides torch's.
  buildInputs = [
    python
    stdenv.cc.cc.lib
  ];
  preFixup = ''
    addAutoPatchelfSearchPath "${torch}/${python.sitePackages}/torch/lib"
  '';
  dependencies = [
    torch
    libtpu
    absl-py
    numpy
    pyyaml
    requests
  ];
  # Importing torch_xla starts no device; PJRT_DEVICE=CPU keeps the check off any TPU.
  preInstallCheck = "export PJRT_DEVICE=CPU";
  pythonImportsCheck = [ "torch_xla" ];
  meta = {
    license = lib.licenses.bsd3;
    platforms = [ "x86_64-linux" ];
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
  };
}
