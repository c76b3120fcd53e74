# libtpu 0.0.21, the TPU runtime torch_xla 2.9.0 pins. PyPI has no cp313 wheel. The cp312 one
# holds libtpu.so (plain C ABI, what torch_xla loads through TPU_LIBRARY_PATH), a pure-Python
# __init__, and libtpu/sdk.so, a CPython 3.12 extension used only by tpu-info: that one is
# removed, so the wheel serves Python 3.13.
{
  lib,
  buildPythonPackage,
  fetchComfyxWheel,
  comfyxSources,
  autoPatchelfHook,
  python,
}:
buildPythonPackage {
  pname = "libtpu";
  inherit (comfyxSources.libtpu) version;
  format = "wheel";
  src = fetchComfyxWheel "libtpu";
  nativeBuildInputs = [ autoPatchelfHook ];
  postInstall = ''
    rm "$out/${python.sitePackages}/libtpu/sdk.so"
  '';
  pythonImportsCheck = [ "libtpu" ];
  meta = {
    license = lib.licenses.unfree;
    platforms = [ "x86_64-linux" ];
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
  };
}
